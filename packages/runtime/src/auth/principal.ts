// Who is calling, from a validated token: a service of the mesh (its service user) or a user, and
// which services may assert a user they act for. The one table of that trust, and the role rules
// the method policies are written in.
import type { Principal } from "../context.js";
import type { NatsRole } from "../nats-subjects.js";
import type { AuthenticatedIdentity } from "./identity.js";

/**
 * The callers that hold a service credential: the mesh's services, and `tools` (the operator's
 * and the test harness's principal: tests, benchmarks, seeding). The same names as NATS roles.
 */
export type ServicePrincipalName = NatsRole;

/**
 * Which service principals may act for users: their acting-for headers (acting-for.ts) are
 * honoured; from anyone else they are ignored. The api asserts the user whose REST request it
 * authenticated, the conductor a build's user (stored with the build), `tools` the users tests
 * and the operator's scripts act as. A new service does not compile until it has a line here.
 */
export const ACTS_FOR_USERS: Readonly<Record<ServicePrincipalName, boolean>> = {
  api: true,
  conductor: true,
  tools: true,
  scheduler: false,
  "network-adapter": false,
  "compute-agent": false,
  identity: false,
};

/** The Keystone role that makes a user a service user (Nova's `service_token_roles`). */
export const SERVICE_ROLE = "service";
/** The project service users are scoped to (as Nova's `nova` user in project `service`). */
export const SERVICE_PROJECT = "service";
const SERVICE_USER_PREFIX = "stratus-";

/** The service user of a service principal: `stratus-<name>`. */
export function serviceUserName(service: ServicePrincipalName): string {
  return `${SERVICE_USER_PREFIX}${service}`;
}

function isServicePrincipalName(name: string): name is ServicePrincipalName {
  return Object.hasOwn(ACTS_FOR_USERS, name);
}

/**
 * The service a token's user is, when it is a service user: the `service` role on its scope and
 * the name `stratus-<service>` of a known service principal. Undefined for anyone else.
 */
export function serviceOf(identity: AuthenticatedIdentity): ServicePrincipalName | undefined {
  if (!identity.userName.startsWith(SERVICE_USER_PREFIX) || !identity.roles.includes(SERVICE_ROLE)) {
    return undefined;
  }
  const name = identity.userName.slice(SERVICE_USER_PREFIX.length);
  return isServicePrincipalName(name) ? name : undefined;
}

/** The principal of a token's own user (no one acting for anyone). */
export function tokenPrincipal(identity: AuthenticatedIdentity): Principal {
  const service = serviceOf(identity);
  return Object.freeze({
    kind: service ? "service" : "user",
    userId: identity.userId,
    userName: identity.userName,
    projectId: identity.projectId,
    roles: identity.roles,
    service: service ?? "",
  });
}

/** The roles of Nova's and Neutron's default policies, each implying the ones below it. */
export type UserRole = "reader" | "member" | "admin";
const RANK = new Map<string, number>([
  ["reader", 1],
  ["member", 2],
  ["admin", 3],
]);

/** Whether the roles include `role` or one that implies it (admin ⇒ member ⇒ reader). */
export function hasRole(roles: readonly string[], role: UserRole): boolean {
  const needed = RANK.get(role)!;
  for (const r of roles) if ((RANK.get(r) ?? 0) >= needed) return true;
  return false;
}
