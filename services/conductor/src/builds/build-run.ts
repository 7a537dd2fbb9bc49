// One run of a build under this replica's lease: the row as the run sees it, the outcomes it
// reached and has not written yet (unrecorded-outcome.ts), and how long its lease surely lasts.
import type { BuildColumns, BuildRow, ServerColumns } from "./build.js";
import { StaleLease } from "./build.js";
import { applyOutcome, type UnrecordedOutcome } from "./unrecorded-outcome.js";

export class BuildRun {
  private deferred: UnrecordedOutcome[] = [];
  /**
   * Until when (this process's clock) the lease surely holds: the time the statement that set it
   * was sent, plus the lease length. The database counts the lease from when it ran that
   * statement, which is no earlier, so another replica cannot take the build before this.
   */
  private leaseEnd: number;
  /** A renewal found the row no longer ours (a delete took it over, or the lease ran out). */
  private lost = false;

  /**
   * `row`: the build as last written (or as CreateServers wrote it), changed as the run goes.
   * `leaseEnd`: see above.
   */
  constructor(
    readonly row: BuildRow,
    leaseEnd: number,
  ) {
    this.leaseEnd = leaseEnd;
  }

  /** Takes a step's outcome without writing it: the build's next write carries it. */
  defer(outcome: UnrecordedOutcome): void {
    applyOutcome(this.row, outcome);
    this.deferred.push(outcome);
  }

  /** What the next write must carry before its own step, oldest first. */
  get unrecorded(): readonly UnrecordedOutcome[] {
    return this.deferred;
  }

  /** A write went through with these columns: they are the row's now, and nothing is unrecorded. */
  written(build: Partial<BuildColumns>, server: Partial<ServerColumns>): void {
    this.deferred = [];
    Object.assign(this.row, build);
    if (server.host !== undefined) this.row.host = server.host;
  }

  /** A statement sent at `sentAt` set the lease `leaseMs` on from when it ran. */
  extended(sentAt: number, leaseMs: number): void {
    this.leaseEnd = Math.max(this.leaseEnd, sentAt + leaseMs);
  }

  /** The lease is not ours any more: the run makes no further call. */
  lose(): void {
    this.lost = true;
  }

  /**
   * The time a call started now must have started at its peer by (the call's `notAfter`): half
   * `marginMs` before the lease's end, the other half left for the call's work at the peer.
   */
  callNotAfter(marginMs: number): number {
    return this.leaseEnd - marginMs / 2;
  }

  /**
   * Throws StaleLease unless the lease holds for at least `marginMs` more: a call to a peer
   * started now has that long to take effect before another run may take the build over.
   */
  assertLeased(marginMs: number): void {
    if (this.lost) throw new StaleLease(`lease on ${this.row.server_id} taken over during the run`);
    if (Date.now() > this.leaseEnd - marginMs)
      throw new StaleLease(`lease on ${this.row.server_id} runs out; the run stops before its next call`);
  }
}
