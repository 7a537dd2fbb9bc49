-- The compute database: flavors, quotas, build requests, servers, their build state, faults and
-- actions. Only the conductor writes it.

CREATE TABLE flavors (
  id text PRIMARY KEY,
  name text NOT NULL UNIQUE,
  vcpus integer NOT NULL CHECK (vcpus > 0),
  ram_mb integer NOT NULL CHECK (ram_mb > 0),
  disk_gb integer NOT NULL CHECK (disk_gb >= 0),
  ephemeral_gb integer NOT NULL DEFAULT 0,
  swap_mb integer NOT NULL DEFAULT 0,
  rxtx_factor double precision NOT NULL DEFAULT 1.0,
  is_public boolean NOT NULL DEFAULT true,
  extra_specs jsonb NOT NULL DEFAULT '{}'::jsonb,
  created_at timestamptz NOT NULL DEFAULT now()
);

-- Nova's default flavors (ids 1..5).
INSERT INTO flavors (id, name, vcpus, ram_mb, disk_gb) VALUES
  ('1', 'm1.tiny', 1, 512, 1),
  ('2', 'm1.small', 1, 2048, 20),
  ('3', 'm1.medium', 2, 4096, 40),
  ('4', 'm1.large', 4, 8192, 80),
  ('5', 'm1.xlarge', 8, 16384, 160);

-- Per-project overrides of the default limits (resource: instances, cores, ram).
CREATE TABLE quotas (
  project_id text NOT NULL,
  resource text NOT NULL,
  hard_limit integer NOT NULL,
  PRIMARY KEY (project_id, resource)
);

-- One accepted CreateServers request. The client token makes a retried request a no-op.
CREATE TABLE build_requests (
  id uuid PRIMARY KEY,
  reservation_id text NOT NULL UNIQUE,
  project_id text NOT NULL,
  user_id text NOT NULL,
  client_token text NOT NULL DEFAULT '',
  request_id text NOT NULL DEFAULT '',
  request jsonb NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX build_requests_token ON build_requests (project_id, client_token) WHERE client_token <> '';

CREATE TABLE servers (
  id uuid PRIMARY KEY,
  build_request_id uuid NOT NULL REFERENCES build_requests (id),
  name text NOT NULL,
  project_id text NOT NULL,
  user_id text NOT NULL,
  flavor_id text NOT NULL,
  -- Snapshot of the flavor at boot (Nova embeds it in the instance).
  flavor jsonb NOT NULL,
  image_ref text NOT NULL DEFAULT '',
  vm_state text NOT NULL,
  task_state text NOT NULL DEFAULT '',
  power_state integer NOT NULL DEFAULT 0,
  host text NOT NULL DEFAULT '',
  node text NOT NULL DEFAULT '',
  addresses jsonb NOT NULL DEFAULT '[]'::jsonb,
  metadata jsonb NOT NULL DEFAULT '{}'::jsonb,
  reservation_id text NOT NULL,
  launch_index integer NOT NULL DEFAULT 0,
  key_name text NOT NULL DEFAULT '',
  availability_zone text NOT NULL DEFAULT '',
  user_data text NOT NULL DEFAULT '',
  hostname text NOT NULL DEFAULT '',
  description text NOT NULL DEFAULT '',
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  launched_at timestamptz,
  terminated_at timestamptz,
  deleted boolean NOT NULL DEFAULT false,
  deleted_at timestamptz
);
CREATE INDEX servers_project ON servers (project_id, created_at, id) WHERE NOT deleted;
CREATE INDEX servers_list ON servers (created_at, id);
CREATE INDEX servers_reservation ON servers (reservation_id);

-- The build (and teardown) state of a server, persisted at every step so that any conductor can
-- resume or cleanly fail it. A worker holds the row through a lease (owner, until); every write
-- of a step checks the generation it leased, so a second worker never acts on a stale view.
CREATE TABLE server_builds (
  server_id uuid PRIMARY KEY REFERENCES servers (id),
  -- allocating, scheduling, binding, spawning, cleanup, deleting, done
  phase text NOT NULL,
  network_mode text NOT NULL,
  -- The requested networks/ports, as accepted.
  requested jsonb NOT NULL DEFAULT '[]'::jsonb,
  -- [{slot, portId, networkId, created, routed, segmentIds, fixedIps}]: created = made by us.
  ports jsonb NOT NULL DEFAULT '[]'::jsonb,
  attempt integer NOT NULL DEFAULT 0,
  max_attempts integer NOT NULL,
  -- The claimed selection and the remaining alternates (JSON of scheduler Selections).
  selected jsonb,
  alternates jsonb NOT NULL DEFAULT '[]'::jsonb,
  failed_hosts text[] NOT NULL DEFAULT '{}',
  -- The BuildCommand of the current attempt has been published.
  command_sent boolean NOT NULL DEFAULT false,
  sent_at timestamptz,
  -- Why a cleanup runs: the fault to record, and the vm_state to end in (error or deleted).
  fault_code integer NOT NULL DEFAULT 0,
  fault_message text NOT NULL DEFAULT '',
  fault_details text NOT NULL DEFAULT '',
  end_state text NOT NULL DEFAULT '',
  request_id text NOT NULL DEFAULT '',
  lease_owner text NOT NULL DEFAULT '',
  lease_until timestamptz NOT NULL DEFAULT now(),
  generation bigint NOT NULL DEFAULT 0,
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX server_builds_pending ON server_builds (lease_until) WHERE phase <> 'done';

CREATE TABLE instance_faults (
  id bigserial PRIMARY KEY,
  server_id uuid NOT NULL REFERENCES servers (id),
  code integer NOT NULL,
  message text NOT NULL,
  details text NOT NULL DEFAULT '',
  host text NOT NULL DEFAULT '',
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX instance_faults_server ON instance_faults (server_id, id);

CREATE TABLE instance_actions (
  id bigserial PRIMARY KEY,
  server_id uuid NOT NULL REFERENCES servers (id),
  action text NOT NULL,
  request_id text NOT NULL,
  user_id text NOT NULL DEFAULT '',
  project_id text NOT NULL DEFAULT '',
  start_time timestamptz NOT NULL DEFAULT now(),
  message text NOT NULL DEFAULT '',
  updated_at timestamptz NOT NULL DEFAULT now(),
  UNIQUE (server_id, request_id)
);

CREATE TABLE instance_action_events (
  id bigserial PRIMARY KEY,
  action_id bigint NOT NULL REFERENCES instance_actions (id),
  event text NOT NULL,
  start_time timestamptz NOT NULL DEFAULT now(),
  finish_time timestamptz,
  result text NOT NULL DEFAULT '',
  traceback text NOT NULL DEFAULT '',
  host text NOT NULL DEFAULT ''
);
CREATE INDEX instance_action_events_action ON instance_action_events (action_id, id);
