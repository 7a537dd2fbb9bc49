// The acting-for headers: the user a service asserts it acts for, beside its own bearer token. A
// callee honours them only from a service allowed to act for users (principal.ts, ACTS_FOR_USERS);
// a caller sends them only then (caller-credential.ts).
import type { Principal } from "../context.js";
import { StratusError } from "../errors.js";
import type { ServicePrincipalName } from "./principal.js";

export const USER_ID_HEADER = "x-stratus-user-id";
export const USER_NAME_HEADER = "x-stratus-user-name";
export const PROJECT_ID_HEADER = "x-stratus-project-id";
/** Comma-separated role names, implied roles included. */
export const ROLES_HEADER = "x-stratus-roles";

interface HeaderSink {
  set(name: string, value: string): void;
}

interface HeaderSource {
  get(name: string): string | null | undefined;
}

/** Writes the user `principal` is as acting-for headers. */
export function writeActingFor(headers: HeaderSink, principal: Principal): void {
  headers.set(USER_ID_HEADER, principal.userId);
  if (principal.userName) headers.set(USER_NAME_HEADER, principal.userName);
  if (principal.projectId) headers.set(PROJECT_ID_HEADER, principal.projectId);
  headers.set(ROLES_HEADER, principal.roles.join(","));
}

const NAME = /^[\w.@:-]{1,255}$/;
const MAX_ROLES = 64;

/**
 * The user `service` asserts in the headers, or undefined when it asserts none (no user id).
 * Values not shaped like an id are refused (invalid_input).
 */
export function readActingFor(headers: HeaderSource, service: ServicePrincipalName): Principal | undefined {
  const userId = headers.get(USER_ID_HEADER);
  if (!userId) return undefined;
  const projectId = headers.get(PROJECT_ID_HEADER) ?? "";
  const roles = (headers.get(ROLES_HEADER) ?? "").split(",").filter(Boolean);
  const userName = headers.get(USER_NAME_HEADER) ?? "";
  if (
    !NAME.test(userId) ||
    (projectId !== "" && !NAME.test(projectId)) ||
    userName.length > 255 ||
    roles.length > MAX_ROLES ||
    !roles.every((r) => NAME.test(r))
  ) {
    throw new StratusError("invalid_input", "malformed acting-for headers");
  }
  return { kind: "user", userId, userName, projectId, roles, service };
}
