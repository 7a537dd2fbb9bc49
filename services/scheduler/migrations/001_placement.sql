-- Placement schema (Placement API semantics). Providers have a small integer id for joins and a
-- public uuid; `generation` guards every write to the provider (optimistic concurrency), the
-- consumer's generation guards writes to its allocations.
CREATE TABLE resource_providers (
  id serial PRIMARY KEY,
  uuid uuid NOT NULL UNIQUE,
  name text NOT NULL UNIQUE,
  generation bigint NOT NULL DEFAULT 0,
  parent_id integer REFERENCES resource_providers (id),
  root_id integer NOT NULL REFERENCES resource_providers (id),
  -- Mirrors the trait MISC_SHARES_VIA_AGGREGATE, kept in step by SetTraits.
  shares boolean NOT NULL DEFAULT false,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX resource_providers_root ON resource_providers (root_id);
CREATE INDEX resource_providers_parent ON resource_providers (parent_id);
CREATE INDEX resource_providers_sharing ON resource_providers (id) WHERE shares;

-- `used` is the sum of allocations against the row, maintained in the same transaction as the
-- allocations; capacity and free are derived so that candidate queries can filter by index.
CREATE TABLE inventories (
  provider_id integer NOT NULL REFERENCES resource_providers (id) ON DELETE CASCADE,
  resource_class text NOT NULL,
  total bigint NOT NULL CHECK (total >= 1),
  reserved bigint NOT NULL DEFAULT 0 CHECK (reserved >= 0),
  min_unit bigint NOT NULL DEFAULT 1 CHECK (min_unit >= 1),
  max_unit bigint NOT NULL CHECK (max_unit >= 1),
  step_size bigint NOT NULL DEFAULT 1 CHECK (step_size >= 1),
  allocation_ratio double precision NOT NULL DEFAULT 1.0 CHECK (allocation_ratio > 0),
  used bigint NOT NULL DEFAULT 0 CHECK (used >= 0),
  capacity bigint GENERATED ALWAYS AS (floor((total - reserved) * allocation_ratio)::bigint) STORED,
  free bigint GENERATED ALWAYS AS (floor((total - reserved) * allocation_ratio)::bigint - used) STORED,
  PRIMARY KEY (provider_id, resource_class)
);
CREATE INDEX inventories_class_free ON inventories (resource_class, free);

CREATE TABLE provider_traits (
  provider_id integer NOT NULL REFERENCES resource_providers (id) ON DELETE CASCADE,
  trait text NOT NULL,
  PRIMARY KEY (provider_id, trait)
);
CREATE INDEX provider_traits_trait ON provider_traits (trait, provider_id);

CREATE TABLE provider_aggregates (
  provider_id integer NOT NULL REFERENCES resource_providers (id) ON DELETE CASCADE,
  aggregate_uuid uuid NOT NULL,
  PRIMARY KEY (provider_id, aggregate_uuid)
);
CREATE INDEX provider_aggregates_aggregate ON provider_aggregates (aggregate_uuid, provider_id);

-- A consumer row exists while the consumer holds allocations (as in Placement, where an
-- emptied consumer is deleted and a new one starts again at generation 0).
CREATE TABLE consumers (
  uuid uuid PRIMARY KEY,
  project_id text NOT NULL,
  user_id text NOT NULL,
  generation bigint NOT NULL DEFAULT 0,
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX consumers_project ON consumers (project_id, user_id);

CREATE TABLE allocations (
  consumer_uuid uuid NOT NULL REFERENCES consumers (uuid) ON DELETE CASCADE,
  provider_id integer NOT NULL REFERENCES resource_providers (id),
  resource_class text NOT NULL,
  used bigint NOT NULL CHECK (used >= 1),
  PRIMARY KEY (consumer_uuid, provider_id, resource_class)
);
CREATE INDEX allocations_provider ON allocations (provider_id, resource_class);
