-- The identity service's own database: Keystone's identity (users, domains), resource (projects),
-- assignment (roles, implied roles, role assignments), application credentials, catalog (regions,
-- services, endpoints), revocation events and the token signing keys.

CREATE TABLE domains (
  id text PRIMARY KEY,
  name text NOT NULL UNIQUE,
  description text NOT NULL DEFAULT '',
  enabled boolean NOT NULL DEFAULT true,
  tags text[] NOT NULL DEFAULT '{}',
  extra jsonb NOT NULL DEFAULT '{}',
  created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE projects (
  id text PRIMARY KEY,
  name text NOT NULL,
  domain_id text NOT NULL REFERENCES domains (id) ON DELETE CASCADE,
  description text NOT NULL DEFAULT '',
  enabled boolean NOT NULL DEFAULT true,
  tags text[] NOT NULL DEFAULT '{}',
  extra jsonb NOT NULL DEFAULT '{}',
  created_at timestamptz NOT NULL DEFAULT now(),
  UNIQUE (domain_id, name)
);

CREATE TABLE users (
  id text PRIMARY KEY,
  name text NOT NULL,
  domain_id text NOT NULL REFERENCES domains (id) ON DELETE CASCADE,
  enabled boolean NOT NULL DEFAULT true,
  -- argon2id in PHC string form (algorithm and cost inside); NULL: no password, cannot log in.
  password_hash text,
  password_created_at timestamptz,
  default_project_id text,
  extra jsonb NOT NULL DEFAULT '{}',
  -- Keystone's lockout (security_compliance): consecutive failures and the last one's time.
  failed_auth_count integer NOT NULL DEFAULT 0,
  failed_auth_at timestamptz,
  created_at timestamptz NOT NULL DEFAULT now(),
  UNIQUE (domain_id, name)
);

CREATE TABLE roles (
  id text PRIMARY KEY,
  name text NOT NULL UNIQUE,
  description text NOT NULL DEFAULT '',
  extra jsonb NOT NULL DEFAULT '{}',
  created_at timestamptz NOT NULL DEFAULT now()
);

-- prior_role implies implied_role (admin implies member implies reader).
CREATE TABLE implied_roles (
  prior_role_id text NOT NULL REFERENCES roles (id) ON DELETE CASCADE,
  implied_role_id text NOT NULL REFERENCES roles (id) ON DELETE CASCADE,
  PRIMARY KEY (prior_role_id, implied_role_id),
  CHECK (prior_role_id <> implied_role_id)
);

-- A user's role on a project, a domain or the system (target_id 'all'). Project and domain rows
-- are removed with their target by the statements that delete it.
CREATE TABLE role_assignments (
  user_id text NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  target_type text NOT NULL CHECK (target_type IN ('project', 'domain', 'system')),
  target_id text NOT NULL,
  role_id text NOT NULL REFERENCES roles (id) ON DELETE CASCADE,
  PRIMARY KEY (user_id, target_type, target_id, role_id)
);
CREATE INDEX role_assignments_by_target ON role_assignments (target_type, target_id);
CREATE INDEX role_assignments_by_role ON role_assignments (role_id);

CREATE TABLE application_credentials (
  id text PRIMARY KEY,
  user_id text NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  project_id text NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
  name text NOT NULL,
  description text NOT NULL DEFAULT '',
  secret_hash text NOT NULL,
  role_ids text[] NOT NULL,
  unrestricted boolean NOT NULL DEFAULT false,
  expires_at timestamptz,
  created_at timestamptz NOT NULL DEFAULT now(),
  UNIQUE (user_id, name)
);

-- Keystone's revocation events: a token matching every non-empty field, issued at or before
-- issued_before, is revoked. Kept while a token that matches can still be in its lifetime.
CREATE TABLE revocations (
  id text PRIMARY KEY,
  audit_id text NOT NULL DEFAULT '',
  user_id text NOT NULL DEFAULT '',
  project_id text NOT NULL DEFAULT '',
  domain_id text NOT NULL DEFAULT '',
  system boolean NOT NULL DEFAULT false,
  application_credential_id text NOT NULL DEFAULT '',
  issued_before timestamptz NOT NULL,
  revoked_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX revocations_by_issued_before ON revocations (issued_before);

-- Token signing keys (ES256). The newest key not retired signs; a retired key still verifies until
-- the last token it signed has expired.
CREATE TABLE signing_keys (
  kid text PRIMARY KEY,
  alg text NOT NULL,
  public_jwk jsonb NOT NULL,
  private_pkcs8 text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  retired_at timestamptz
);

CREATE TABLE regions (
  id text PRIMARY KEY,
  description text NOT NULL DEFAULT '',
  parent_region_id text REFERENCES regions (id)
);

CREATE TABLE services (
  id text PRIMARY KEY,
  type text NOT NULL,
  name text NOT NULL DEFAULT '',
  description text NOT NULL DEFAULT '',
  enabled boolean NOT NULL DEFAULT true,
  extra jsonb NOT NULL DEFAULT '{}'
);

CREATE TABLE endpoints (
  id text PRIMARY KEY,
  service_id text NOT NULL REFERENCES services (id) ON DELETE CASCADE,
  interface text NOT NULL CHECK (interface IN ('public', 'internal', 'admin')),
  region_id text REFERENCES regions (id),
  url text NOT NULL,
  enabled boolean NOT NULL DEFAULT true,
  extra jsonb NOT NULL DEFAULT '{}'
);
