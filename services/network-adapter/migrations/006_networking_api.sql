-- What the Networking API (Neutron v2.0) needs of the owner: standard attributes on every
-- resource, the attributes updates may change, segmentation ids unique per type, a free list that
-- no longer grows with the subnet, and quotas counted by the database. Expand only: columns and
-- tables are added, nothing an earlier adapter reads is changed or dropped, so that one of those
-- sharing the database keeps working during a rolling upgrade.

-- ---- standard attributes (description, timestamps, revision_number) --------------------------
ALTER TABLE networks
  ADD COLUMN description text NOT NULL DEFAULT '',
  ADD COLUMN revision_number bigint NOT NULL DEFAULT 1;
ALTER TABLE segments
  ADD COLUMN description text NOT NULL DEFAULT '',
  ADD COLUMN updated_at timestamptz NOT NULL DEFAULT now(),
  ADD COLUMN revision_number bigint NOT NULL DEFAULT 1;
ALTER TABLE subnets
  ADD COLUMN description text NOT NULL DEFAULT '',
  ADD COLUMN dns_nameservers text[] NOT NULL DEFAULT '{}',
  ADD COLUMN host_routes jsonb NOT NULL DEFAULT '[]',
  ADD COLUMN updated_at timestamptz NOT NULL DEFAULT now(),
  ADD COLUMN revision_number bigint NOT NULL DEFAULT 1;
ALTER TABLE subnet_pools
  ADD COLUMN description text NOT NULL DEFAULT '',
  ADD COLUMN updated_at timestamptz NOT NULL DEFAULT now(),
  ADD COLUMN revision_number bigint NOT NULL DEFAULT 1;
ALTER TABLE routers
  ADD COLUMN description text NOT NULL DEFAULT '',
  ADD COLUMN admin_state_up boolean NOT NULL DEFAULT true,
  ADD COLUMN enable_snat boolean NOT NULL DEFAULT true,
  ADD COLUMN updated_at timestamptz NOT NULL DEFAULT now(),
  ADD COLUMN revision_number bigint NOT NULL DEFAULT 1;
ALTER TABLE ports
  ADD COLUMN description text NOT NULL DEFAULT '',
  ADD COLUMN revision_number bigint NOT NULL DEFAULT 1;

-- ---- segments ------------------------------------------------------------------------------
-- A network's segments are listed (and preferred by binding) in the order they were made, also
-- when one transaction makes several (a multi-provider network): the time of the insert, not of
-- the transaction.
ALTER TABLE segments ALTER COLUMN created_at SET DEFAULT clock_timestamp();
-- A tunnel id (vxlan, geneve) is unique per type, as a VLAN is per physical network (001).
CREATE UNIQUE INDEX segments_tunnel_unique ON segments (network_type, segmentation_id)
  WHERE network_type IN ('vxlan', 'geneve');

-- ---- IPAM: a window of the free list -------------------------------------------------------
-- ip_free keeps one row per free address only below each subnet's frontier: every address of the
-- subnet's allocation pools at or above next_ip that no ip_allocations row holds is free without
-- a row. The window (ip_free) is refilled from the frontier as it empties (src/core/ipam.ts), so
-- a subnet costs rows for the addresses handed out soon, not for all of its addresses. A subnet
-- without a frontier row (made before this migration, or by an earlier adapter) has all of its
-- free addresses in ip_free, as before.
CREATE TABLE ip_free_frontier (
  subnet_id uuid PRIMARY KEY REFERENCES subnets (id) ON DELETE CASCADE,
  next_ip bigint NOT NULL
);

-- ---- quotas --------------------------------------------------------------------------------
-- Neutron's defaults; a resource without its own default is unlimited (-1).
CREATE TABLE quota_defaults (
  resource text PRIMARY KEY,
  hard_limit integer NOT NULL CHECK (hard_limit >= -1)
);
INSERT INTO quota_defaults (resource, hard_limit) VALUES
  ('network', 100), ('subnet', 100), ('port', 500), ('router', 10), ('subnetpool', -1);

-- A project's own limits, where set.
CREATE TABLE quotas (
  project_id text NOT NULL,
  resource text NOT NULL REFERENCES quota_defaults (resource),
  hard_limit integer NOT NULL CHECK (hard_limit >= -1),
  PRIMARY KEY (project_id, resource)
);

-- What each project holds, kept by the triggers below on every insert and delete, whoever makes
-- it (every path of this adapter, and an earlier adapter during an upgrade): the count cannot
-- drift from the rows. An insert that takes a project past its limit fails (SQLSTATE 23514,
-- constraint quota_exceeded), so the limit is judged where the rows are written: two creations
-- racing for the last unit meet on the usage row, and the second sees the first's count.
CREATE TABLE quota_usages (
  project_id text NOT NULL,
  resource text NOT NULL,
  in_use integer NOT NULL DEFAULT 0,
  PRIMARY KEY (project_id, resource)
);
INSERT INTO quota_usages (project_id, resource, in_use)
  SELECT project_id, 'network', count(*) FROM networks WHERE project_id <> '' GROUP BY project_id
  UNION ALL SELECT project_id, 'subnet', count(*) FROM subnets WHERE project_id <> '' GROUP BY project_id
  UNION ALL SELECT project_id, 'port', count(*) FROM ports WHERE project_id <> '' GROUP BY project_id
  UNION ALL SELECT project_id, 'router', count(*) FROM routers WHERE project_id <> '' GROUP BY project_id
  UNION ALL SELECT project_id, 'subnetpool', count(*) FROM subnet_pools WHERE project_id <> '' GROUP BY project_id;

-- Statement-level: one upsert per project of a statement, however many rows it inserted (the
-- per-turn statements insert up to 16 ports at once).
CREATE FUNCTION quota_count_created() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  v_resource constant text := TG_ARGV[0];
  v_over text;
BEGIN
  WITH made AS (
    SELECT project_id, count(*)::int AS n FROM new_rows WHERE project_id <> '' GROUP BY project_id
  ),
  counted AS (
    INSERT INTO quota_usages AS u (project_id, resource, in_use)
    SELECT project_id, v_resource, n FROM made
    ON CONFLICT (project_id, resource) DO UPDATE SET in_use = u.in_use + EXCLUDED.in_use
    RETURNING u.project_id, u.in_use
  )
  SELECT c.project_id INTO v_over FROM counted c
  CROSS JOIN LATERAL (
    SELECT coalesce((SELECT q.hard_limit FROM quotas q WHERE q.project_id = c.project_id AND q.resource = v_resource),
                    (SELECT d.hard_limit FROM quota_defaults d WHERE d.resource = v_resource), -1) AS hard_limit
  ) l
  WHERE l.hard_limit >= 0 AND c.in_use > l.hard_limit
  LIMIT 1;
  IF v_over IS NOT NULL THEN
    RAISE EXCEPTION 'Quota exceeded for resources: [''%''].', v_resource
      USING ERRCODE = 'check_violation', CONSTRAINT = 'quota_exceeded', DETAIL = v_over;
  END IF;
  RETURN NULL;
END
$$;

CREATE FUNCTION quota_count_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  UPDATE quota_usages u SET in_use = u.in_use - gone.n
  FROM (SELECT project_id, count(*)::int AS n FROM old_rows WHERE project_id <> '' GROUP BY project_id) gone
  WHERE u.project_id = gone.project_id AND u.resource = TG_ARGV[0];
  RETURN NULL;
END
$$;

CREATE TRIGGER networks_quota_created AFTER INSERT ON networks REFERENCING NEW TABLE AS new_rows
  FOR EACH STATEMENT EXECUTE FUNCTION quota_count_created('network');
CREATE TRIGGER networks_quota_deleted AFTER DELETE ON networks REFERENCING OLD TABLE AS old_rows
  FOR EACH STATEMENT EXECUTE FUNCTION quota_count_deleted('network');
CREATE TRIGGER subnets_quota_created AFTER INSERT ON subnets REFERENCING NEW TABLE AS new_rows
  FOR EACH STATEMENT EXECUTE FUNCTION quota_count_created('subnet');
CREATE TRIGGER subnets_quota_deleted AFTER DELETE ON subnets REFERENCING OLD TABLE AS old_rows
  FOR EACH STATEMENT EXECUTE FUNCTION quota_count_deleted('subnet');
CREATE TRIGGER ports_quota_created AFTER INSERT ON ports REFERENCING NEW TABLE AS new_rows
  FOR EACH STATEMENT EXECUTE FUNCTION quota_count_created('port');
CREATE TRIGGER ports_quota_deleted AFTER DELETE ON ports REFERENCING OLD TABLE AS old_rows
  FOR EACH STATEMENT EXECUTE FUNCTION quota_count_deleted('port');
CREATE TRIGGER routers_quota_created AFTER INSERT ON routers REFERENCING NEW TABLE AS new_rows
  FOR EACH STATEMENT EXECUTE FUNCTION quota_count_created('router');
CREATE TRIGGER routers_quota_deleted AFTER DELETE ON routers REFERENCING OLD TABLE AS old_rows
  FOR EACH STATEMENT EXECUTE FUNCTION quota_count_deleted('router');
CREATE TRIGGER subnet_pools_quota_created AFTER INSERT ON subnet_pools REFERENCING NEW TABLE AS new_rows
  FOR EACH STATEMENT EXECUTE FUNCTION quota_count_created('subnetpool');
CREATE TRIGGER subnet_pools_quota_deleted AFTER DELETE ON subnet_pools REFERENCING OLD TABLE AS old_rows
  FOR EACH STATEMENT EXECUTE FUNCTION quota_count_deleted('subnetpool');
