// Build runs waiting to start and running in this replica: one run per server at a time, up to a
// concurrency that yields to CreateServers callers while they crowd in (accept-gate.ts).
import { type Logger, runWithContext, systemContext } from "@stratus/runtime";
import type { AcceptGate } from "./accept-gate.js";

export class RunQueue<Hint> {
  private readonly active = new Map<string, Promise<void>>();
  private readonly queue: string[] = [];
  private readonly queued = new Set<string>();
  /** What a server's next run starts from, if it starts before anything else wakes it. */
  private readonly hints = new Map<string, Hint>();
  private running = 0;
  private stopped = false;
  private recheck: NodeJS.Timeout | undefined;

  constructor(
    private readonly o: {
      /** Runs at once when not yielding. */
      concurrency: number;
      gate: AcceptGate;
      run: (serverId: string, hint: Hint | undefined) => Promise<void>;
      logger: Logger;
    },
  ) {}

  /** Runs a server soon, its run starting from `hint` unless something else wakes it first. */
  startFrom(serverId: string, hint: Hint): void {
    if (this.stopped) return;
    this.hints.set(serverId, hint);
    this.enqueue(serverId);
  }

  /** Runs (or runs again) a server soon, once per server at a time. */
  kick(serverId: string): void {
    this.hints.delete(serverId);
    this.enqueue(serverId);
  }

  /** Its next run reads the server's state again (a run queued but not started yet included). */
  forgetHint(serverId: string): void {
    this.hints.delete(serverId);
  }

  /** Runs a CreateServers call, counted as a caller builds yield to. */
  async accept<T>(call: () => Promise<T>): Promise<T> {
    const leave = this.o.gate.enter();
    try {
      return await call();
    } finally {
      leave();
    }
  }

  /** Waits for this process's current run of a server, if any. */
  async settle(serverId: string): Promise<void> {
    await this.active.get(serverId)?.catch(() => undefined);
  }

  isActive(serverId: string): boolean {
    return this.active.has(serverId);
  }

  /** Counts `work` as the server's run (others wait for it) until it settles. */
  async hold<T>(serverId: string, work: Promise<T>): Promise<T> {
    const settled = work.then(() => undefined);
    this.active.set(serverId, settled);
    try {
      return await work;
    } finally {
      if (this.active.get(serverId) === settled) this.active.delete(serverId);
    }
  }

  /** Runs waiting to start, runs going, and the gate's state (metrics). */
  state(): { queued: number; running: number; accepting: number; yielding: boolean } {
    return { queued: this.queue.length, running: this.running, ...this.o.gate.state() };
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.recheck);
  }

  private enqueue(serverId: string): void {
    if (this.stopped || this.queued.has(serverId)) return;
    this.queued.add(serverId);
    this.queue.push(serverId);
    this.pump();
  }

  /** Build runs allowed at once now. */
  private limit(): number {
    const { runs, recheckInMs } = this.o.gate.limit(this.o.concurrency, this.queue.length);
    if (recheckInMs !== undefined && this.queue.length && !this.recheck && !this.stopped) {
      // The callers may stop with no run ending to notice: look again when the hold ends.
      this.recheck = setTimeout(() => {
        this.recheck = undefined;
        this.pump();
      }, recheckInMs + 1);
      this.recheck.unref();
    }
    return runs;
  }

  private pump(): void {
    const limit = this.limit();
    while (this.running < limit && this.queue.length) {
      const id = this.queue.shift()!;
      this.queued.delete(id);
      if (this.active.has(id)) {
        // Runs again after the current run, which may have left work (e.g. a result arrived).
        void this.active.get(id)!.finally(() => this.kick(id));
        continue;
      }
      this.running++;
      const hint = this.hints.get(id);
      this.hints.delete(id);
      const p = runWithContext(systemContext(), () => this.o.run(id, hint))
        .catch((err) => this.o.logger.error({ err, serverId: id }, "build run failed"))
        .finally(() => {
          this.active.delete(id);
          this.running--;
          this.pump();
        });
      this.active.set(id, p);
    }
  }
}
