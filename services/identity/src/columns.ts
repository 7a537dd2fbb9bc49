// The columns of the identity database's tables that statements read (packages/runtime's
// storage/columns.ts says why no statement reads `*`). A column added by a migration is read
// once it is listed here.
import { tableColumns } from "@stratus/runtime";

export const cols = tableColumns({
  application_credentials: [
    "id",
    "user_id",
    "project_id",
    "name",
    "description",
    "secret_hash",
    "role_ids",
    "unrestricted",
    "expires_at",
    "created_at",
  ],
  domains: ["id", "name", "description", "enabled", "tags", "extra", "created_at"],
  endpoints: ["id", "service_id", "interface", "region_id", "url", "enabled", "extra"],
  projects: ["id", "name", "domain_id", "description", "enabled", "tags", "extra", "created_at"],
  regions: ["id", "description", "parent_region_id"],
  revocations: [
    "id",
    "audit_id",
    "user_id",
    "project_id",
    "domain_id",
    "system",
    "application_credential_id",
    "issued_before",
    "revoked_at",
  ],
  roles: ["id", "name", "description", "extra", "created_at"],
  services: ["id", "type", "name", "description", "enabled", "extra"],
  signing_keys: ["kid", "alg", "public_jwk", "private_pkcs8", "created_at", "retired_at"],
  users: [
    "id",
    "name",
    "domain_id",
    "enabled",
    "password_hash",
    "password_created_at",
    "default_project_id",
    "extra",
    "failed_auth_count",
    "failed_auth_at",
    "created_at",
  ],
});
