// Which path a port call takes. CreatePort (with or without a host to bind to at once), the first
// bind of a deferred port and CheckAndUpdatePorts are the hot calls: their common cases are statements
// gathered per event-loop turn (port-statements.ts, port-check.ts: one statement for all the calls
// of a turn, one round trip and one commit); what a statement leaves, the transaction answers
// (ports.ts, binding.ts). Both paths are built from the same rules, so the choice changes the cost
// of a call, never its answer.
import { PortChange } from "@stratus/contracts/events/v1";
import { type CreatePortRequest, IpAllocation } from "@stratus/contracts/network/v1";
import { TurnBatcher } from "@stratus/runtime";
import { bindPort, createAndBindPort } from "./binding.js";
import type { Caller } from "./context.js";
import type { PortRec } from "./model.js";
import type { NewPort } from "./new-ports.js";
import {
  checkAndUpdateRows,
  type PortCheck,
  type PortDetails,
  portCheckDetails,
  preparePortCheck,
} from "./port-check.js";
import { createdBoundPortOfRow, createdPortOfRow, portWithHeldAddress } from "./port-events.js";
import {
  bindDeferredPorts,
  boundEligible,
  createBoundPorts,
  createDeferredPorts,
  createImmediatePorts,
  type DeferredBind,
  deferredEligible,
  immediateEligible,
} from "./port-statements.js";
import type { Work } from "./work.js";

type Row = Record<string, unknown>;

/**
 * How the per-turn statements are cut: at most 4 in flight, up to 16 calls each, a statement that
 * fails run again call by call (aloneOnError). Batches of 16 rather than everything waiting: a few
 * statements in flight keep the callers, this process and the database working at the same time
 * instead of in lockstep.
 */
const PORT_BATCHES = { inFlight: 4, maxBatch: 16, aloneOnError: true } as const;

/**
 * How long a network found routed (a port came out deferred, or a port's bind found it so) is
 * remembered: its ports go to the deferred or the bound statement first, not to the immediate one,
 * which cannot make them. It only decides which path is tried first: a network that stopped being
 * routed is served by the transaction meanwhile, as correctly.
 */
const ROUTED_MEMORY_MS = 60_000;
/** Networks remembered as routed, at most (the memory starts again empty beyond). */
const ROUTED_MEMORY_SIZE = 10_000;
/** Deferred ports remembered as made and not bound yet, at most. */
const UNBOUND_MEMORY_SIZE = 100_000;

export class PortService {
  private readonly immediate: TurnBatcher<NewPort, Row | null>;
  private readonly deferred: TurnBatcher<NewPort, Row | null>;
  private readonly bound: TurnBatcher<NewPort, Row | null>;
  private readonly binds: TurnBatcher<DeferredBind, Row | null>;
  private readonly checks: TurnBatcher<PortCheck, Row[]>;
  /** Networks known to be routed, until when. */
  private readonly routedUntil = new Map<string, number>();
  /** Deferred ports this process made and has not bound yet: their first bind tries the statement. */
  private readonly unboundDeferred = new Set<string>();

  constructor(private readonly work: Work) {
    const q = work.db;
    // The statements that take addresses retry a failed batch request by request themselves
    // (createImmediatePorts, createBoundPorts).
    const retryingItself = { inFlight: PORT_BATCHES.inFlight, maxBatch: PORT_BATCHES.maxBatch };
    this.immediate = new TurnBatcher((items) => createImmediatePorts(q, items), retryingItself);
    this.bound = new TurnBatcher((items) => createBoundPorts(q, items), retryingItself);
    this.deferred = new TurnBatcher((items) => createDeferredPorts(q, items), PORT_BATCHES);
    this.binds = new TurnBatcher((binds) => bindDeferredPorts(q, binds), PORT_BATCHES);
    this.checks = new TurnBatcher((checks) => checkAndUpdateRows(q, checks), PORT_BATCHES);
  }

  async create(req: CreatePortRequest, caller: Caller): Promise<PortRec> {
    const knownRouted = (this.routedUntil.get(req.networkId) ?? 0) > Date.now();
    if (knownRouted && deferredEligible(req, caller)) {
      const port = await this.work.statement(caller, async (tx) => {
        const row = await this.deferred.add({ req, caller });
        return row ? createdPortOfRow(row, tx.out) : undefined;
      });
      if (port) {
        this.noteUnbound(port);
        return port;
      }
    }
    if (!knownRouted && immediateEligible(req, caller)) {
      const port = await this.work.statement(caller, async (tx) => {
        const row = await this.immediate.add({ req, caller });
        return row ? createdPortOfRow(row, tx.out) : undefined;
      });
      if (port) return port;
    }
    if (knownRouted && boundEligible(req, caller)) {
      const port = await this.work.statement(caller, async (tx) => {
        const row = await this.bound.add({ req, caller });
        return row ? createdBoundPortOfRow(row, tx.out) : undefined;
      });
      if (port) return port;
    }
    const { port, routed } = await this.work.transaction(caller, (tx) => createAndBindPort(tx, req));
    if (!req.bindingHostId) this.noteUnbound(port);
    if (routed || port.ipAllocation === IpAllocation.DEFERRED) this.noteRouted(req.networkId);
    return port;
  }

  async bind(req: DeferredBind["req"], caller: Caller): Promise<{ port: PortRec; segmentId: string }> {
    if (this.unboundDeferred.delete(req.portId.toLowerCase())) {
      const bound = await this.work.statement(caller, async (tx) => {
        const row = await this.binds.add({ req, caller });
        if (!row) return undefined;
        // A bind's segment is never null: the statement binds only onto a segment it chose.
        const { port, segmentId } = portWithHeldAddress(row, tx.out, PortChange.BOUND);
        return { port, segmentId: segmentId! };
      });
      if (bound) return bound;
    }
    return this.work.transaction(caller, (tx) => bindPort(tx, req));
  }

  /** CheckAndUpdatePorts: always the statement (there is nothing it leaves to a transaction). */
  async check(req: PortCheck["req"], caller: Caller): Promise<PortDetails[]> {
    const check = preparePortCheck(req);
    return this.work.statement(caller, async (tx) =>
      portCheckDetails(tx.out, check, check.ordered.length ? await this.checks.add(check) : []),
    );
  }

  private noteRouted(networkId: string): void {
    if (this.routedUntil.size > ROUTED_MEMORY_SIZE) this.routedUntil.clear();
    this.routedUntil.set(networkId, Date.now() + ROUTED_MEMORY_MS);
  }

  private noteUnbound(port: PortRec): void {
    if (port.ipAllocation !== IpAllocation.DEFERRED) return;
    if (this.unboundDeferred.size >= UNBOUND_MEMORY_SIZE) this.unboundDeferred.clear();
    this.unboundDeferred.add(port.id);
  }
}
