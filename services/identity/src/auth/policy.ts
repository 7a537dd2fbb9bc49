// Who may do what, as Keystone's default policies with the three default roles: an admin (the
// admin role on any scope) may do everything; a reader on the system reads everything, a reader on
// a domain reads that domain's users, projects and grants; any user reads itself, its own
// projects and tokens, changes its own password and manages its own application credentials.
// Nothing here writes: member and reader grant no identity writes (as in Keystone).
import { StratusError } from "@stratus/runtime";
import type { AuthenticatedIdentity } from "@stratus/runtime/auth";

/** What an action is about: the owner, domain and project of the object acted on. */
export interface PolicyTarget {
  userId?: string | undefined;
  domainId?: string | undefined;
  projectId?: string | undefined;
}

type Rule = (c: AuthenticatedIdentity, t: PolicyTarget) => boolean;

const admin: Rule = (c) => c.roles.includes("admin");
const systemReader: Rule = (c) => c.system && c.roles.includes("reader");
const domainReader: Rule = (c, t) => !!c.domainId && c.domainId === t.domainId && c.roles.includes("reader");
const self: Rule = (c, t) => !!t.userId && c.userId === t.userId;
const inProject: Rule = (c, t) => !!t.projectId && c.projectId === t.projectId;
const projectInDomain: Rule = (c, t) => !!t.domainId && c.projectDomainId === t.domainId;
const anyone: Rule = () => true;

const any =
  (...rules: Rule[]): Rule =>
  (c, t) =>
    rules.some((r) => r(c, t));

const cloudReader = any(admin, systemReader);
const domainScopedReader = any(admin, systemReader, domainReader);

export const POLICY = {
  "identity:get_domain": any(admin, systemReader, domainReader, projectInDomain),
  "identity:list_domains": cloudReader,
  "identity:create_domain": admin,
  "identity:update_domain": admin,
  "identity:delete_domain": admin,
  "identity:get_project": any(admin, systemReader, domainReader, inProject),
  "identity:list_projects": domainScopedReader,
  "identity:list_user_projects": any(admin, systemReader, domainReader, self),
  "identity:create_project": admin,
  "identity:update_project": admin,
  "identity:delete_project": admin,
  "identity:get_user": any(admin, systemReader, domainReader, self),
  "identity:list_users": domainScopedReader,
  "identity:create_user": admin,
  "identity:update_user": admin,
  "identity:delete_user": admin,
  "identity:get_role": domainScopedReader,
  "identity:list_roles": domainScopedReader,
  "identity:create_role": admin,
  "identity:update_role": admin,
  "identity:delete_role": admin,
  "identity:get_implied_role": cloudReader,
  "identity:list_implied_roles": cloudReader,
  "identity:list_role_inference_rules": cloudReader,
  "identity:create_implied_role": admin,
  "identity:delete_implied_role": admin,
  "identity:check_grant": domainScopedReader,
  "identity:list_grants": domainScopedReader,
  "identity:create_grant": admin,
  "identity:revoke_grant": admin,
  "identity:check_system_grant_for_user": cloudReader,
  "identity:list_system_grants_for_user": cloudReader,
  "identity:create_system_grant_for_user": admin,
  "identity:revoke_system_grant_for_user": admin,
  "identity:list_role_assignments": domainScopedReader,
  "identity:get_region": anyone,
  "identity:list_regions": anyone,
  "identity:create_region": admin,
  "identity:update_region": admin,
  "identity:delete_region": admin,
  "identity:get_service": cloudReader,
  "identity:list_services": cloudReader,
  "identity:create_service": admin,
  "identity:update_service": admin,
  "identity:delete_service": admin,
  "identity:get_endpoint": cloudReader,
  "identity:list_endpoints": cloudReader,
  "identity:create_endpoint": admin,
  "identity:update_endpoint": admin,
  "identity:delete_endpoint": admin,
  "identity:validate_token": any(cloudReader, self),
  "identity:check_token": any(cloudReader, self),
  "identity:revoke_token": any(admin, self),
  "identity:get_application_credential": any(cloudReader, self),
  "identity:list_application_credentials": any(cloudReader, self),
  "identity:create_application_credential": self,
  "identity:delete_application_credential": any(admin, self),
} satisfies Record<string, Rule>;

export type Action = keyof typeof POLICY;

/**
 * The domain a listing is limited to: what was asked for when the caller reads the whole cloud,
 * else the caller's own domain scope (a domain reader sees its domain; others, nothing).
 */
export function listingDomain(caller: AuthenticatedIdentity, asked: string | undefined): string | undefined {
  return cloudReader(caller, {}) ? asked : caller.domainId || undefined;
}

/** Where a new user or project goes when the body does not say: the caller's domain. */
export function callerDomain(caller: AuthenticatedIdentity): string {
  return caller.domainId || caller.projectDomainId || caller.userDomainId;
}

export function allowed(action: Action, caller: AuthenticatedIdentity, target: PolicyTarget = {}): boolean {
  return POLICY[action](caller, target);
}

/** Throws Keystone's 403 when the caller may not do it. */
export function enforce(action: Action, caller: AuthenticatedIdentity, target: PolicyTarget = {}): void {
  if (!allowed(action, caller, target)) {
    throw new StratusError("forbidden", `You are not authorized to perform the requested action: ${action}.`);
  }
}
