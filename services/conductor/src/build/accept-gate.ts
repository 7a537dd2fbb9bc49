/**
 * Accepting before building. A CreateServers caller waits for its 202; a build runs with nobody
 * waiting on each step. While at least `crowd` calls are being accepted at once (and for `holdMs`
 * after such a crowd was last seen), the builder starts at most `concurrency` runs at a time, so a
 * burst of creates is accepted at the rate the cores allow and is built right after it. Builds
 * never stop: `concurrency` is at least 1, and a sustained burst only slows them.
 */
export interface YieldOptions {
  /** Calls in progress at once that count as a crowd; 0 turns yielding off. */
  crowd: number;
  /** Build runs at once while yielding (at least 1). */
  concurrency: number;
  holdMs: number;
}

export class AcceptGate {
  private accepting = 0;
  private crowdSeenAt = Number.NEGATIVE_INFINITY;

  constructor(
    private readonly o: YieldOptions | undefined,
    private readonly now: () => number = () => performance.now(),
  ) {}

  /** Counts a call being accepted; call what it returns (once) when the call ends. */
  enter(): () => void {
    this.accepting++;
    if (this.o && this.o.crowd > 0 && this.accepting >= this.o.crowd) this.crowdSeenAt = this.now();
    let left = false;
    return () => {
      if (left) return;
      left = true;
      this.accepting--;
    };
  }

  /**
   * Build runs allowed at once now, out of `full`, and (while yielding) the milliseconds until the
   * hold ends, when the caller should look again: the crowd may pass with no run ending to notice.
   */
  limit(full: number): { runs: number; recheckInMs?: number } {
    const o = this.o;
    if (!o || o.crowd <= 0) return { runs: full };
    const left = this.crowdSeenAt + o.holdMs - this.now();
    if (left <= 0) return { runs: full };
    return { runs: Math.min(full, Math.max(1, o.concurrency)), recheckInMs: left };
  }
}
