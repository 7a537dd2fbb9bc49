-- Network schema (Neutron semantics). Addresses are stored as bigint (IPv4 as an unsigned
-- integer) so that ranges and free lists are plain integer arithmetic in SQL.
--
-- IPAM invariant: ip_allocations has PRIMARY KEY (subnet_id, ip), so an address can never be held
-- twice, whatever the number of processes. ip_free is the free list of each subnet's allocation
-- pools; automatic allocation takes a row from it with FOR UPDATE SKIP LOCKED, so concurrent
-- allocators never wait on each other and never collide.

CREATE TABLE networks (
  id uuid PRIMARY KEY,
  name text NOT NULL DEFAULT '',
  project_id text NOT NULL DEFAULT '',
  shared boolean NOT NULL DEFAULT false,
  router_external boolean NOT NULL DEFAULT false,
  is_default boolean NOT NULL DEFAULT false,
  mtu integer NOT NULL DEFAULT 1450,
  status text NOT NULL DEFAULT 'ACTIVE',
  admin_state_up boolean NOT NULL DEFAULT true,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX networks_project ON networks (project_id);
-- At most one default external network.
CREATE UNIQUE INDEX networks_one_default_external ON networks ((true)) WHERE router_external AND is_default;

-- Segmentation ids for tunnelled (vxlan/geneve) default segments.
CREATE SEQUENCE tunnel_ids START 1001;

CREATE TABLE segments (
  id uuid PRIMARY KEY,
  network_id uuid NOT NULL REFERENCES networks (id) ON DELETE CASCADE,
  name text NOT NULL DEFAULT '',
  network_type text NOT NULL CHECK (network_type IN ('flat', 'vlan', 'vxlan', 'geneve')),
  physical_network text NOT NULL DEFAULT '',
  segmentation_id integer NOT NULL DEFAULT 0,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX segments_network ON segments (network_id);
CREATE INDEX segments_physnet ON segments (physical_network);
CREATE UNIQUE INDEX segments_vlan_unique ON segments (physical_network, segmentation_id) WHERE network_type = 'vlan';
CREATE UNIQUE INDEX segments_flat_unique ON segments (physical_network) WHERE network_type = 'flat';

CREATE TABLE subnet_pools (
  id uuid PRIMARY KEY,
  name text NOT NULL DEFAULT '',
  project_id text NOT NULL DEFAULT '',
  prefixes text[] NOT NULL,
  default_prefixlen integer NOT NULL,
  min_prefixlen integer NOT NULL,
  max_prefixlen integer NOT NULL,
  is_default boolean NOT NULL DEFAULT false,
  shared boolean NOT NULL DEFAULT false,
  ip_version integer NOT NULL DEFAULT 4,
  created_at timestamptz NOT NULL DEFAULT now()
);
-- At most one default pool per IP family.
CREATE UNIQUE INDEX subnet_pools_one_default ON subnet_pools (ip_version) WHERE is_default;

CREATE TABLE subnets (
  id uuid PRIMARY KEY,
  network_id uuid NOT NULL REFERENCES networks (id) ON DELETE CASCADE,
  segment_id uuid REFERENCES segments (id),
  project_id text NOT NULL DEFAULT '',
  name text NOT NULL DEFAULT '',
  cidr text NOT NULL,
  net_first bigint NOT NULL,
  net_last bigint NOT NULL,
  prefixlen integer NOT NULL,
  ip_version integer NOT NULL DEFAULT 4,
  gateway_ip bigint,
  enable_dhcp boolean NOT NULL DEFAULT true,
  subnetpool_id uuid REFERENCES subnet_pools (id),
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX subnets_network ON subnets (network_id);
CREATE INDEX subnets_segment ON subnets (segment_id);
CREATE INDEX subnets_pool ON subnets (subnetpool_id);

CREATE TABLE allocation_pools (
  subnet_id uuid NOT NULL REFERENCES subnets (id) ON DELETE CASCADE,
  first_ip bigint NOT NULL,
  last_ip bigint NOT NULL,
  CHECK (first_ip <= last_ip),
  PRIMARY KEY (subnet_id, first_ip)
);

CREATE TABLE ip_free (
  subnet_id uuid NOT NULL REFERENCES subnets (id) ON DELETE CASCADE,
  ip bigint NOT NULL,
  PRIMARY KEY (subnet_id, ip)
);

CREATE TABLE ports (
  id uuid PRIMARY KEY,
  network_id uuid NOT NULL REFERENCES networks (id),
  project_id text NOT NULL DEFAULT '',
  name text NOT NULL DEFAULT '',
  mac_address text NOT NULL,
  device_id text NOT NULL DEFAULT '',
  device_owner text NOT NULL DEFAULT '',
  status text NOT NULL DEFAULT 'DOWN',
  ip_allocation text NOT NULL CHECK (ip_allocation IN ('immediate', 'deferred', 'none')),
  binding_host_id text NOT NULL DEFAULT '',
  binding_vif_type text NOT NULL DEFAULT 'unbound',
  binding_vif_details jsonb NOT NULL DEFAULT '{}',
  binding_profile jsonb NOT NULL DEFAULT '{}',
  binding_vnic_type text NOT NULL DEFAULT 'normal',
  binding_segment_id uuid REFERENCES segments (id),
  admin_state_up boolean NOT NULL DEFAULT true,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  UNIQUE (network_id, mac_address)
);
CREATE INDEX ports_device ON ports (device_id);
CREATE INDEX ports_project ON ports (project_id);
CREATE INDEX ports_network ON ports (network_id);

CREATE TABLE ip_allocations (
  subnet_id uuid NOT NULL REFERENCES subnets (id),
  ip bigint NOT NULL,
  port_id uuid NOT NULL REFERENCES ports (id),
  PRIMARY KEY (subnet_id, ip)
);
CREATE INDEX ip_allocations_port ON ip_allocations (port_id);

-- What each compute host reported (its bridge mappings); the host ↔ segment map is derived from
-- it by physical network, so new segments are mapped at once and stale mappings cannot linger.
CREATE TABLE hosts (
  host text PRIMARY KEY,
  physical_networks text[] NOT NULL DEFAULT '{}',
  compute_node_uuid text NOT NULL DEFAULT '',
  updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE routers (
  id uuid PRIMARY KEY,
  name text NOT NULL DEFAULT '',
  project_id text NOT NULL DEFAULT '',
  external_network_id uuid REFERENCES networks (id),
  gateway_port_id uuid REFERENCES ports (id),
  status text NOT NULL DEFAULT 'ACTIVE',
  created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE router_interfaces (
  router_id uuid NOT NULL REFERENCES routers (id) ON DELETE CASCADE,
  subnet_id uuid NOT NULL REFERENCES subnets (id),
  port_id uuid NOT NULL REFERENCES ports (id),
  PRIMARY KEY (router_id, subnet_id)
);

-- One get-me-a-network topology per project: the primary key makes concurrent first calls agree.
CREATE TABLE auto_allocated_topologies (
  project_id text PRIMARY KEY,
  network_id uuid NOT NULL REFERENCES networks (id),
  subnet_id uuid REFERENCES subnets (id),
  router_id uuid REFERENCES routers (id),
  created_at timestamptz NOT NULL DEFAULT now()
);
