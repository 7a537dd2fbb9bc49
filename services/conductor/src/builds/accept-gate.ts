/**
 * Accepting before building. A CreateServers caller waits for its 202; a build runs with nobody
 * waiting on each step. Builds yield, starting at most `concurrency` runs at a time, while
 * - a crowd of callers is waiting on builds that pile up: at least `crowd` calls in progress at
 *   once without a break for `sustainMs` (and for `holdMs` after such a crowd was last seen),
 *   with at least `crowd` builds queued, not started; or
 * - builds fall behind callers that keep arriving: at least `backlog` builds queued and a call
 *   arrived within the last `holdMs`.
 * A burst of creates is accepted at the rate the cores allow and built right after it. Builds
 * never stop (`concurrency` is at least 1): a burst that never ends only slows them. Callers that
 * each wait for their server to be built (one create per finished build) leave nothing queued,
 * however many of them wait at once, so they never make builds yield; neither does a backlog
 * with no caller (a restart's sweep).
 */
export interface YieldOptions {
  /** Calls in progress at once that make a crowd; 0: never. */
  crowd: number;
  /** How long the crowd must stay before builds yield to it. */
  sustainMs: number;
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
  /** Since when `crowd` or more calls have been in progress without a break. */
  private crowdSince: number | undefined;

  constructor(
    private readonly o: YieldOptions | undefined,
    private readonly now: () => number = () => performance.now(),
  ) {}

  /** A CreateServers call arrived; call what this returns (once) when it ends. */
  enter(): () => void {
    const now = this.now();
    this.arrivedAt = now;
    this.inProgress++;
    if (this.o && this.o.crowd > 0 && this.inProgress >= this.o.crowd) {
      this.crowdSince ??= now;
      this.sawCrowd(now);
    }
    let left = false;
    return () => {
      if (left) return;
      left = true;
      this.inProgress--;
      if (this.o && this.inProgress < this.o.crowd) this.crowdSince = undefined;
    };
  }

  /** CreateServers calls in progress, and whether builds yield to them now (metrics). */
  state(): { accepting: number; yielding: boolean } {
    const o = this.o;
    if (!o) return { accepting: this.inProgress, yielding: false };
    const now = this.now();
    const yielding =
      (o.crowd > 0 && this.crowdAt + o.holdMs > now) || (o.backlog > 0 && this.arrivedAt + o.holdMs > now);
    return { accepting: this.inProgress, yielding };
  }

  private sawCrowd(now: number): void {
    if (this.crowdSince !== undefined && now - this.crowdSince >= (this.o?.sustainMs ?? 0))
      this.crowdAt = now;
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
    this.sawCrowd(now);
    let left = 0;
    if (o.crowd > 0 && queued >= o.crowd) left = this.crowdAt + o.holdMs - now;
    if (o.backlog > 0 && queued >= o.backlog) left = Math.max(left, this.arrivedAt + o.holdMs - now);
    if (left <= 0) return { runs: full };
    return { runs: Math.min(full, Math.max(1, o.concurrency)), recheckInMs: left };
  }
}
