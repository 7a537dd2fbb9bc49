// What every core operation gets: a transaction, the caller, and an outbox of events that are
// published only once the transaction has committed.
import type { DescMessage, MessageInitShape } from "@bufbuild/protobuf";
import { currentContext, type Queryable, StratusError } from "@stratus/runtime";

export interface Caller {
  projectId: string;
  isAdmin: boolean;
}

/**
 * The caller from the request context's principal, which the RPC pipeline made from the caller's
 * verified credential: a user (its own token, or asserted by the api or by the conductor for a
 * build's user) is its project, an admin with the admin role; a service acting as itself (the
 * compute agent, a periodic task) is trusted like an admin. No context: nobody, no rights.
 */
export function currentCaller(): Caller {
  const c = currentContext();
  return { projectId: c?.projectId ?? "", isAdmin: c?.isAdmin ?? false };
}

/** Whether the caller may make resources for the project it names: its own, or any for an admin. */
export function mayActFor(requested: string, caller: Caller): boolean {
  return !requested || caller.isAdmin || requested === caller.projectId;
}

/** The project a new resource belongs to: the one asked for (admins only, if not theirs) or the caller's. */
export function owningProject(requested: string, caller: Caller): string {
  if (!mayActFor(requested, caller)) {
    throw new StratusError("forbidden", `project ${caller.projectId} cannot act for project ${requested}`);
  }
  return requested || caller.projectId;
}

export interface PendingEvent {
  subject: string;
  schema: DescMessage;
  value: MessageInitShape<DescMessage>;
}

export class Outbox {
  readonly events: PendingEvent[] = [];
  /** Segments whose placement provider may need an update. */
  readonly segments = new Set<string>();
  /** Segments that are gone (their providers and aggregates must go). */
  readonly removedSegments = new Set<string>();
  /** Hosts whose compute-node aggregates may need an update. */
  readonly hosts = new Set<string>();
  /** Subnets an address was taken from (their windows of free addresses may need a refill). */
  readonly allocatedFrom = new Set<string>();

  add<D extends DescMessage>(subject: string, schema: D, value: MessageInitShape<D>): void {
    this.events.push({ subject, schema, value: value as MessageInitShape<DescMessage> });
  }
}

export interface Tx {
  q: Queryable;
  out: Outbox;
  caller: Caller;
}

/** The same transaction acting as an admin: for the parts an operation makes on its own behalf. */
export const asAdmin = (tx: Tx): Tx => ({ ...tx, caller: { projectId: "", isAdmin: true } });

export function isUniqueViolation(err: unknown, constraint?: string): boolean {
  const e = err as { code?: string; constraint?: string };
  return e?.code === "23505" && (constraint === undefined || e.constraint === constraint);
}

export function isForeignKeyViolation(err: unknown): boolean {
  return (err as { code?: string })?.code === "23503";
}
