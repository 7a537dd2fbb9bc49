// The claims of a Stratus token (a JWS, ES256): Keystone's JWS provider's claims (sub, iat, exp,
// openstack_methods, openstack_audit_ids, openstack_project_id, openstack_domain_id,
// openstack_system, openstack_app_cred_id) plus what a service needs to decide without asking the
// identity service: the user's name and domain, the project's name and domain, the role names on
// the scope (implied roles expanded) and the issue time to the millisecond (revocations compare
// against it). The one definition of the format, read by every validator and written by the
// identity service.
import type { AuthenticatedIdentity } from "./identity.js";

export const TOKEN_ALGORITHM = "ES256";

export interface TokenClaims {
  sub: string;
  /** Seconds since the epoch (JWT NumericDate). */
  iat: number;
  exp: number;
  openstack_methods: string[];
  openstack_audit_ids: string[];
  openstack_user_name: string;
  openstack_user_domain_id: string;
  openstack_project_id?: string;
  openstack_project_name?: string;
  openstack_project_domain_id?: string;
  openstack_domain_id?: string;
  /** "all" for a system-scoped token, as Keystone. */
  openstack_system?: "all";
  openstack_roles: string[];
  openstack_app_cred_id?: string;
  /** Milliseconds since the epoch: iat to the millisecond. */
  openstack_issued_at_ms: number;
}

/** The claims a token for this identity carries. */
export function claimsFor(identity: AuthenticatedIdentity): TokenClaims {
  const issuedMs = identity.issuedAt.getTime();
  const claims: TokenClaims = {
    sub: identity.userId,
    iat: Math.floor(issuedMs / 1000),
    exp: Math.floor(identity.expiresAt.getTime() / 1000),
    openstack_methods: identity.methods,
    openstack_audit_ids: identity.auditIds,
    openstack_user_name: identity.userName,
    openstack_user_domain_id: identity.userDomainId,
    openstack_roles: identity.roles,
    openstack_issued_at_ms: issuedMs,
  };
  if (identity.projectId) {
    claims.openstack_project_id = identity.projectId;
    claims.openstack_project_name = identity.projectName;
    claims.openstack_project_domain_id = identity.projectDomainId;
  }
  if (identity.domainId) claims.openstack_domain_id = identity.domainId;
  if (identity.system) claims.openstack_system = "all";
  if (identity.applicationCredentialId) claims.openstack_app_cred_id = identity.applicationCredentialId;
  return claims;
}

/** Why a payload is not a Stratus token's: the message of the refusal. */
export class MalformedClaims extends Error {}

const ID = /^[\w.@:-]{1,255}$/;

function text(payload: Record<string, unknown>, name: string, pattern?: RegExp): string {
  const v = payload[name];
  if (typeof v !== "string" || v.length > 255 || (pattern && !pattern.test(v))) {
    throw new MalformedClaims(`claim ${name}`);
  }
  return v;
}

function optionalText(payload: Record<string, unknown>, name: string, pattern?: RegExp): string {
  return payload[name] === undefined ? "" : text(payload, name, pattern);
}

function texts(payload: Record<string, unknown>, name: string, max: number): string[] {
  const v = payload[name];
  if (!Array.isArray(v) || v.length > max || !v.every((s) => typeof s === "string" && s.length <= 255)) {
    throw new MalformedClaims(`claim ${name}`);
  }
  return v as string[];
}

function time(payload: Record<string, unknown>, name: string): number {
  const v = payload[name];
  if (typeof v !== "number" || !Number.isSafeInteger(v) || v < 0) throw new MalformedClaims(`claim ${name}`);
  return v;
}

/** The identity a verified payload carries; throws MalformedClaims when it is not a token's. */
export function identityFromClaims(payload: Record<string, unknown>): AuthenticatedIdentity {
  const issuedMs = time(payload, "openstack_issued_at_ms");
  const exp = time(payload, "exp");
  if (Math.floor(issuedMs / 1000) !== time(payload, "iat")) throw new MalformedClaims("claim iat");
  const auditIds = texts(payload, "openstack_audit_ids", 2);
  if (auditIds.length === 0) throw new MalformedClaims("claim openstack_audit_ids");
  const projectId = optionalText(payload, "openstack_project_id", ID);
  const domainId = optionalText(payload, "openstack_domain_id", ID);
  const system = payload.openstack_system === undefined ? false : payload.openstack_system === "all";
  if (payload.openstack_system !== undefined && !system) throw new MalformedClaims("claim openstack_system");
  if ([projectId, domainId, system].filter(Boolean).length > 1) throw new MalformedClaims("two scopes");
  const identity: AuthenticatedIdentity = {
    userId: text(payload, "sub", ID),
    userName: text(payload, "openstack_user_name"),
    userDomainId: text(payload, "openstack_user_domain_id", ID),
    projectId,
    projectName: projectId ? text(payload, "openstack_project_name") : "",
    projectDomainId: projectId ? text(payload, "openstack_project_domain_id", ID) : "",
    domainId,
    system,
    roles: texts(payload, "openstack_roles", 64),
    issuedAt: new Date(issuedMs),
    expiresAt: new Date(exp * 1000),
    auditIds,
    methods: texts(payload, "openstack_methods", 4),
  };
  const appCred = optionalText(payload, "openstack_app_cred_id", ID);
  if (appCred) identity.applicationCredentialId = appCred;
  return identity;
}
