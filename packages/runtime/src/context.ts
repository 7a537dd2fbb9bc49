// The request context that crosses every hop: the request id, and who the call is for (its
// principal). The request id travels in RPC and NATS headers; the principal is never read from a
// header as such: the RPC pipeline's authentication stage makes it from the caller's verified
// credential (auth/rpc-authentication.ts), and a NATS message is handled by the service itself.
import { AsyncLocalStorage } from "node:async_hooks";
import { randomUUID } from "node:crypto";

export const REQUEST_ID_HEADER = "x-openstack-request-id";

/**
 * Who a call is for.
 * - `user`: a user with a token of its own, or a user asserted by a service allowed to act for
 *   users (the api for the request it authenticated, the conductor for a build's user);
 * - `service`: a service acting as itself (its own token, no user asserted; also this process's
 *   own work with no caller, systemContext);
 * - `anonymous`: nobody yet: a call before the pipeline's authentication stage has run.
 */
export interface Principal {
  kind: "user" | "service" | "anonymous";
  userId: string;
  userName: string;
  /** The project a user acts in ("" without a project scope); a service's own project. */
  projectId: string;
  /** Role names, implied roles included (admin, member, reader; `service` for services). */
  roles: readonly string[];
  /**
   * kind service: the service (NATS role name, e.g. "conductor"; "" for this process itself);
   * kind user: the service that asserted the user ("" when the user presented its own token).
   */
  service: string;
}

export interface RequestContext {
  requestId: string;
  principal: Principal;
  /** The user the call acts for; "" when a service acts as itself. */
  userId: string;
  /** The project the call acts in; "" when a service acts as itself or a user has no project scope. */
  projectId: string;
  /** Has the admin role, or is a service acting as itself (trusted as the mesh's own work). */
  isAdmin: boolean;
  /**
   * The time (ms since the epoch) after which a callee must not start a call made in this
   * context: sent as NOT_AFTER_HEADER on every RPC, checked by the callee's pipeline. A conductor
   * run's calls carry its lease's end (builds/lease-keeper.ts). Not carried on to the callee's
   * own calls.
   */
  notAfter?: number;
}

const storage = new AsyncLocalStorage<RequestContext>();

export function newRequestId(): string {
  return `req-${randomUUID()}`;
}

const REQUEST_ID_PATTERN = /^req-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** A caller may send its own global request id; anything not shaped like one is replaced. */
export function acceptRequestId(value: string | null | undefined): string {
  return value && REQUEST_ID_PATTERN.test(value) ? value : newRequestId();
}

/** The context of a call for `principal`. */
export function contextFor(requestId: string, principal: Principal): RequestContext {
  const user = principal.kind === "user";
  return {
    requestId,
    principal,
    userId: user ? principal.userId : "",
    projectId: user ? principal.projectId : "",
    isAdmin: principal.kind === "service" || (user && principal.roles.includes("admin")),
  };
}

/** A service acting as itself, known by name only ("": this process itself). */
export function servicePrincipal(service: string): Principal {
  return Object.freeze({
    kind: "service",
    userId: "",
    userName: "",
    projectId: "",
    roles: Object.freeze([]) as readonly string[],
    service,
  });
}

const THIS_SERVICE = servicePrincipal("");

/**
 * Work of this service with no caller (sweeps, repairs, events from NATS): the service acts as
 * itself, and its outgoing calls carry its own credential and no user.
 */
export function systemContext(requestId = newRequestId()): RequestContext {
  return contextFor(requestId, THIS_SERVICE);
}

/** The roles a user has with `admin` or not, implied roles included (admin ⇒ member ⇒ reader). */
export function defaultRoles(isAdmin: boolean): string[] {
  return isAdmin ? ["admin", "member", "reader"] : ["member", "reader"];
}

/**
 * A user's context, as a service that may act for users asserts it to its peers (the api for the
 * caller it authenticated, the conductor for a build's user, a test through the harness's tools).
 */
export function userContext(user: {
  userId: string;
  projectId: string;
  roles: readonly string[];
  userName?: string;
  requestId?: string;
}): RequestContext {
  return contextFor(user.requestId ?? newRequestId(), {
    kind: "user",
    userId: user.userId,
    userName: user.userName ?? "",
    projectId: user.projectId,
    roles: user.roles,
    service: "",
  });
}

const ANONYMOUS: Principal = Object.freeze({ ...THIS_SERVICE, kind: "anonymous" });

/** A call whose caller is not known yet: the request id only, and no rights at all. */
export function anonymousContext(requestId: string): RequestContext {
  return contextFor(requestId, ANONYMOUS);
}

export function currentContext(): RequestContext | undefined {
  return storage.getStore();
}

export function runWithContext<T>(ctx: RequestContext, fn: () => T): T {
  return storage.run(ctx, fn);
}

interface HeaderSink {
  set(name: string, value: string): void;
}

/** Writes the current context's request id (if any) into outgoing headers. */
export function writeRequestId(headers: HeaderSink, ctx = currentContext()): void {
  if (ctx) headers.set(REQUEST_ID_HEADER, ctx.requestId);
}

/** The header that carries a call's `notAfter` (RequestContext). */
export const NOT_AFTER_HEADER = "stratus-not-after";

/** Writes the current context's `notAfter` (if any) into outgoing headers. */
export function writeNotAfter(headers: HeaderSink, ctx = currentContext()): void {
  if (ctx?.notAfter !== undefined) headers.set(NOT_AFTER_HEADER, String(Math.floor(ctx.notAfter)));
}

interface HeaderSource {
  get(name: string): string | null | undefined;
}

/** The request id of incoming headers; a missing or malformed one gets a fresh one. */
export function readRequestId(headers: HeaderSource): string {
  return acceptRequestId(headers.get(REQUEST_ID_HEADER));
}
