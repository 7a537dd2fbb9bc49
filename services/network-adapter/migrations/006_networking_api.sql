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
-- A network's segments in the order they were made (Neutron's segment_index), also when one
-- transaction makes several (a multi-provider network), which created_at cannot tell apart: how
-- they are listed and the order binding prefers them in.
ALTER TABLE segments ADD COLUMN segment_index integer NOT NULL DEFAULT 0;
UPDATE segments s SET segment_index = o.i
FROM (SELECT id, row_number() OVER (PARTITION BY network_id ORDER BY created_at, id) - 1 AS i FROM segments) o
WHERE o.id = s.id;
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
-- drift from the rows. A project's use of a resource is the sum of its slots. Where the project
-- has a limit, every insert counts in slot 0, whose row lock makes them one at a time, and sums
-- the slots after taking it: an insert that takes the project past its limit fails (SQLSTATE
-- 23514, constraint quota_exceeded), and two creations racing for the last unit meet there, the
-- second seeing the first's count. Where it has none, an insert counts in its connection's slot
-- and checks nothing, so creations on several connections do not wait for each other's commits.
CREATE TABLE quota_usages (
  project_id text NOT NULL,
  resource text NOT NULL,
  slot smallint NOT NULL DEFAULT 0,
  in_use integer NOT NULL DEFAULT 0,
  PRIMARY KEY (project_id, resource, slot)
);
INSERT INTO quota_usages (project_id, resource, in_use)
  SELECT project_id, 'network', count(*) FROM networks WHERE project_id <> '' GROUP BY project_id
  UNION ALL SELECT project_id, 'subnet', count(*) FROM subnets WHERE project_id <> '' GROUP BY project_id
  UNION ALL SELECT project_id, 'port', count(*) FROM ports WHERE project_id <> '' GROUP BY project_id
  UNION ALL SELECT project_id, 'router', count(*) FROM routers WHERE project_id <> '' GROUP BY project_id
  UNION ALL SELECT project_id, 'subnetpool', count(*) FROM subnet_pools WHERE project_id <> '' GROUP BY project_id;

-- The limit of a project for a resource (-1: none).
CREATE FUNCTION quota_limit(p_project text, p_resource text) RETURNS integer LANGUAGE sql STABLE AS $$
  SELECT coalesce((SELECT q.hard_limit FROM quotas q WHERE q.project_id = p_project AND q.resource = p_resource),
                  (SELECT d.hard_limit FROM quota_defaults d WHERE d.resource = p_resource), -1)
$$;

-- Statement-level: per project of a statement, however many rows it inserted (the per-turn
-- statements insert up to 16 ports at once).
CREATE FUNCTION quota_count_created() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  v_resource constant text := TG_ARGV[0];
  r record;
  v_limit integer;
  v_total bigint;
BEGIN
  FOR r IN SELECT project_id, count(*)::int AS n FROM new_rows WHERE project_id <> '' GROUP BY project_id LOOP
    v_limit := quota_limit(r.project_id, v_resource);
    INSERT INTO quota_usages AS u (project_id, resource, slot, in_use)
    VALUES (r.project_id, v_resource, CASE WHEN v_limit < 0 THEN pg_backend_pid() % 16 ELSE 0 END, r.n)
    ON CONFLICT (project_id, resource, slot) DO UPDATE SET in_use = u.in_use + EXCLUDED.in_use;
    IF v_limit >= 0 THEN
      -- A statement of its own: it sees what every insert before ours committed.
      SELECT sum(in_use) INTO v_total FROM quota_usages WHERE project_id = r.project_id AND resource = v_resource;
      IF v_total > v_limit THEN
        RAISE EXCEPTION 'Quota exceeded for resources: [''%''].', v_resource
          USING ERRCODE = 'check_violation', CONSTRAINT = 'quota_exceeded', DETAIL = r.project_id;
      END IF;
    END IF;
  END LOOP;
  RETURN NULL;
END
$$;

CREATE FUNCTION quota_count_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO quota_usages AS u (project_id, resource, slot, in_use)
  SELECT project_id, TG_ARGV[0], pg_backend_pid() % 16, -count(*)::int FROM old_rows WHERE project_id <> '' GROUP BY project_id
  ON CONFLICT (project_id, resource, slot) DO UPDATE SET in_use = u.in_use + EXCLUDED.in_use;
  RETURN NULL;
END
$$;

-- The triggers of each counted table: <table>_quota_created and <table>_quota_deleted.
DO $$
DECLARE
  t record;
BEGIN
  FOR t IN SELECT * FROM (VALUES ('networks', 'network'), ('subnets', 'subnet'), ('ports', 'port'),
                                 ('routers', 'router'), ('subnet_pools', 'subnetpool')) AS v(tbl, resource) LOOP
    EXECUTE format('CREATE TRIGGER %I AFTER INSERT ON %I REFERENCING NEW TABLE AS new_rows
                    FOR EACH STATEMENT EXECUTE FUNCTION quota_count_created(%L)',
                   t.tbl || '_quota_created', t.tbl, t.resource);
    EXECUTE format('CREATE TRIGGER %I AFTER DELETE ON %I REFERENCING OLD TABLE AS old_rows
                    FOR EACH STATEMENT EXECUTE FUNCTION quota_count_deleted(%L)',
                   t.tbl || '_quota_deleted', t.tbl, t.resource);
  END LOOP;
END
$$;
