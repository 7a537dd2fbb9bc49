-- The fake virt driver's hypervisor state: what runs on each simulated host. One row per
-- (server, host), as each host is its own hypervisor; a restart of the agent keeps it.
CREATE TABLE instances (
  server_id text NOT NULL,
  host text NOT NULL,
  attempt integer NOT NULL,
  -- 1 RUNNING, 4 SHUTDOWN (Nova's power states).
  power_state integer NOT NULL DEFAULT 1,
  port_ids text[] NOT NULL DEFAULT '{}',
  name text NOT NULL DEFAULT '',
  image_ref text NOT NULL DEFAULT '',
  vcpus bigint NOT NULL DEFAULT 0,
  memory_mb bigint NOT NULL DEFAULT 0,
  disk_gb bigint NOT NULL DEFAULT 0,
  metadata jsonb NOT NULL DEFAULT '{}',
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (server_id, host)
);
CREATE INDEX instances_host ON instances (host);

-- The outcome of each build command handled, so that a redelivered command is answered with the
-- same result instead of spawning (or failing) again.
CREATE TABLE build_outcomes (
  server_id text NOT NULL,
  host text NOT NULL,
  attempt integer NOT NULL,
  success boolean NOT NULL,
  error text NOT NULL DEFAULT '',
  retryable boolean NOT NULL DEFAULT false,
  at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (server_id, host, attempt)
);
