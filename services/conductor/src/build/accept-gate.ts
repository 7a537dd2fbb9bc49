/**
 * Accepting before building. A CreateServers caller waits for its 202; a build runs with nobody
 * waiting on each step. Builds yield, starting at most `concurrency` runs at a time, while
 * - a crowd of callers is waiting: at least `crowd` calls in progress at once (and for `holdMs`
 *   after such a crowd was last seen), or
 * - builds are falling behind callers that keep arriving: at least `backlog` builds queued (not
 *   started) and a call arrived within the last `holdMs`.
 * A burst of creates is accepted at the rate the cores allow and built right after it. Builds
 * never stop (`concurrency` is at least 1): a burst that never ends only slows them. A stream of
 * creates the builds keep up with (one create per finished build, say) makes neither a crowd nor a
 * backlog, so it never yields; neither does a backlog with no caller (a restart's sweep).
 */
export interface YieldOptions {
  /** Calls in progress at once that make a crowd; 0: never. */
  crowd: number;
  /** Queued builds that count as falling behind; 0: never. */
  backlog: number;
  /** Build runs at once while yielding (at least 1). */
  concurrency: number;
  holdMs: number;
}

export class AcceptGate {
  private inProgress = 0;
  private arrivedAt = Number.NEGATIVE_INFINITY;
  private crowdAt = Number.NEGATIVE_INFINITY;

  constructor(
    private readonly o: YieldOptions | undefined,
    private readonly now: () => number = () => performance.now(),
  ) {}

  /** A CreateServers call arrived; call what this returns (once) when it ends. */
  enter(): () => void {
    const now = this.now();
    this.arrivedAt = now;
    this.inProgress++;
    if (this.o && this.o.crowd > 0 && this.inProgress >= this.o.crowd) this.crowdAt = now;
    let left = false;
    return () => {
      if (left) return;
      left = true;
      this.inProgress--;
    };
  }

  /**
   * Build runs allowed at once now, out of `full`, with `queued` builds waiting to start; while
   * yielding, also the milliseconds until the hold ends, when the caller should look again (the
   * callers may stop with no run ending to notice).
   */
  limit(full: number, queued: number): { runs: number; recheckInMs?: number } {
    const o = this.o;
    if (!o) return { runs: full };
    const now = this.now();
    let left = 0;
    if (o.crowd > 0) left = this.crowdAt + o.holdMs - now;
    if (o.backlog > 0 && queued >= o.backlog) left = Math.max(left, this.arrivedAt + o.holdMs - now);
    if (left <= 0) return { runs: full };
    return { runs: Math.min(full, Math.max(1, o.concurrency)), recheckInMs: left };
  }
}
