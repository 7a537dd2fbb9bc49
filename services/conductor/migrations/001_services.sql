-- Compute services known from their heartbeats (os-services).
CREATE TABLE compute_services (
  id uuid PRIMARY KEY,
  binary_name text NOT NULL,
  host text NOT NULL,
  zone text NOT NULL DEFAULT 'nova',
  disabled boolean NOT NULL DEFAULT false,
  disabled_reason text NOT NULL DEFAULT '',
  forced_down boolean NOT NULL DEFAULT false,
  last_seen_at timestamptz NOT NULL,
  UNIQUE (binary_name, host)
);
