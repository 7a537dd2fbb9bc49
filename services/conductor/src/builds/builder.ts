// The build flow of this replica (design.md §2): what CreateServers, DeleteServer, the build
// results consumer and the sweep call. A worker leases a build row (owner + expiry, generation
// bumped on every lease); each step writes its outcome guarded by that generation, so a second
// replica, or this one restarted, resumes from the last write and never acts on a stale view.
// Every step is idempotent when run again; outcomes a step leaves for the next write are found
// again as unrecorded-outcome.ts states.
import type { Database, Logger } from "@stratus/runtime";
import type { ServerChanges } from "../compute/changes.js";
import type { ServerRecord } from "../compute/servers.js";
import { AcceptGate, type YieldOptions } from "./accept-gate.js";
import { runSteps } from "./advance.js";
import {
  type BuildResult,
  type BuildRow,
  createdRow,
  type NewBuild,
  type NewLease,
  StaleLease,
} from "./build.js";
import { announce, type BuildContext } from "./build-context.js";
import { BuildRun } from "./build-run.js";
import { BuildStore } from "./build-store.js";
import { cleanup } from "./cleanup.js";
import { LeaseKeeper } from "./lease-keeper.js";
import type { QueueState } from "./metrics.js";
import type { Peers } from "./peers.js";
import { Results } from "./results.js";
import { RunQueue } from "./run-queue.js";

export interface BuilderOptions {
  db: Database;
  peers: Peers;
  logger: Logger;
  /** This conductor's identity in leases; stable across restarts of the same replica. */
  owner: string;
  leaseMs: number;
  /** A sent build with no result after this long counts as a failed attempt. */
  buildTimeoutMs: number;
  /** A build still not spawning after this long fails (a peer that never comes back). */
  buildDeadlineMs: number;
  concurrency: number;
  /** Builds yield to CreateServers callers (see AcceptGate). */
  yieldTo?: YieldOptions;
  /** Told of every committed write to servers (stratus.server.changed). */
  changes?: ServerChanges;
}

/** A build row CreateServers wrote here, until when its first run may start from it, and its lease's end. */
interface Created {
  row: BuildRow;
  until: number;
  leaseEnd: number;
}

export class Builder {
  private readonly ctx: BuildContext;
  private readonly queue: RunQueue<Created>;
  private readonly results: Results;

  constructor(private readonly o: BuilderOptions) {
    const store = new BuildStore({ db: o.db, owner: o.owner, leaseMs: o.leaseMs, changes: o.changes });
    this.ctx = {
      store,
      leases: new LeaseKeeper({ db: o.db, owner: o.owner, leaseMs: o.leaseMs, logger: o.logger }),
      ...o.peers,
      logger: o.logger,
      buildTimeoutMs: o.buildTimeoutMs,
      buildDeadlineMs: o.buildDeadlineMs,
    };
    this.queue = new RunQueue<Created>({
      concurrency: o.concurrency,
      gate: new AcceptGate(o.yieldTo),
      run: (serverId, created) => this.run(serverId, created),
      logger: o.logger,
    });
    this.results = new Results(this.ctx, this.queue);
  }

  /**
   * The lease CreateServers gives the builds it accepts here (the request's `lease`), taken
   * before the statement that writes it (so `takenAt` is no later than the database's now()).
   */
  newLease(): NewLease {
    return { owner: this.o.owner, leaseMs: this.o.leaseMs, takenAt: Date.now() };
  }

  /**
   * Runs a build this process has just created leased to itself (`newLease`): its first run
   * starts from the row as created instead of taking the lease with a write of its own, if it
   * starts within half the lease. Anything else that wakes the build (`kick`, a delete) makes the
   * run read the row again.
   */
  kickCreated(server: ServerRecord, build: NewBuild, lease: NewLease): void {
    // The first state of the new server (committed): its watchers see every state from this one on.
    announce(
      this.ctx,
      { server_id: server.id, project_id: server.projectId, host: "" },
      server.vmState,
      server.taskState,
    );
    this.queue.startFrom(server.id, {
      row: createdRow(server, build),
      until: lease.takenAt + lease.leaseMs / 2,
      leaseEnd: lease.takenAt + lease.leaseMs,
    });
  }

  /** The run queue's and accept gate's state now (metrics.ts). */
  queueState(): QueueState {
    return this.queue.state();
  }

  /** Runs (or resumes) the build of a server soon, once per server at a time in this process. */
  kick(serverId: string): void {
    this.queue.kick(serverId);
  }

  /** Runs a CreateServers call, counted as a caller builds yield to (see `yieldTo`). */
  accept<T>(call: () => Promise<T>): Promise<T> {
    return this.queue.accept(call);
  }

  /** Waits for this process's current run of a server, if any. */
  settle(serverId: string): Promise<void> {
    return this.queue.settle(serverId);
  }

  /** Picks up builds whose lease expired (a dead conductor, a timeout) or that we held before a restart. */
  async sweep(startup = false): Promise<number> {
    if (startup) await this.ctx.store.freeOwnLeases();
    const ids = await this.ctx.store.expired();
    for (const id of ids) this.kick(id);
    return ids.length;
  }

  stop(): void {
    this.queue.stop();
    this.ctx.leases.stop();
  }

  /** A BuildResult from a compute agent; false: redeliver it later (see Results). */
  onResult(r: BuildResult): Promise<boolean> {
    return this.results.onResult(r);
  }

  /** DeleteServer: takes the build over (whatever step it is in) and tears the server down. */
  async delete(
    serverId: string,
    ctx: { requestId: string; userId: string; projectId: string },
  ): Promise<void> {
    // A run not started yet reads the row again (it is ours to tear down now).
    this.queue.forgetHint(serverId);
    const server = await this.ctx.store.markDeleting(serverId, ctx);
    if (server) announce(this.ctx, { server_id: serverId, ...server }, server.vm_state, "deleting");
    await this.settle(serverId);
    // Whoever takes the lease first tears it down: this call, or a run a sweep or a result started.
    const run = await this.ctx.store.acquire(serverId);
    if (!run) return;
    try {
      await this.ctx.leases.hold(this.ctx, run, (ctx) => cleanup(ctx, run));
    } catch (err) {
      if (err instanceof StaleLease) return;
      this.o.logger.warn({ err, serverId }, "delete step failed; will retry");
      await this.ctx.store.retryLater(run.row);
    }
  }

  private async run(serverId: string, created: Created | undefined): Promise<void> {
    const run =
      created && Date.now() < created.until
        ? new BuildRun(created.row, created.leaseEnd)
        : await this.ctx.store.acquire(serverId);
    if (!run) return;
    // Every step of the build runs as its user and under the request id of the call that asked
    // for it, so both cross to the scheduler, the network-adapter and (the request id, in the
    // build command) the compute agent.
    return this.ctx.leases.hold(this.ctx, run, (ctx) => runSteps(ctx, run));
  }
}
