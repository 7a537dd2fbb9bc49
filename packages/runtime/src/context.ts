// The request context that crosses every hop: request id and caller identity, carried in RPC
// headers and NATS headers and read back into an AsyncLocalStorage on the other side.
import { AsyncLocalStorage } from "node:async_hooks";
import { randomUUID } from "node:crypto";

export const REQUEST_ID_HEADER = "x-openstack-request-id";
export const USER_HEADER = "x-stratus-user-id";
export const PROJECT_HEADER = "x-stratus-project-id";
export const ADMIN_HEADER = "x-stratus-admin";

export interface RequestContext {
  requestId: string;
  /** Empty for internal work with no caller (e.g. a periodic repair). */
  userId: string;
  projectId: string;
  isAdmin: boolean;
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

export function systemContext(requestId = newRequestId()): RequestContext {
  return { requestId, userId: "", projectId: "", isAdmin: true };
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

/** Writes the current context (if any) into outgoing headers. */
export function writeContextHeaders(headers: HeaderSink, ctx = currentContext()): void {
  if (!ctx) return;
  headers.set(REQUEST_ID_HEADER, ctx.requestId);
  if (ctx.userId) headers.set(USER_HEADER, ctx.userId);
  if (ctx.projectId) headers.set(PROJECT_HEADER, ctx.projectId);
  headers.set(ADMIN_HEADER, ctx.isAdmin ? "1" : "0");
}

interface HeaderSource {
  get(name: string): string | null | undefined;
}

/** Reads a context from incoming headers; a missing request id gets a fresh one. */
export function readContextHeaders(headers: HeaderSource): RequestContext {
  return {
    requestId: acceptRequestId(headers.get(REQUEST_ID_HEADER)),
    userId: headers.get(USER_HEADER) ?? "",
    projectId: headers.get(PROJECT_HEADER) ?? "",
    isAdmin: headers.get(ADMIN_HEADER) === "1",
  };
}
