// Keeps each subnet's window of free addresses (ipam.ts) filled in the background, so that
// allocations find their rows there instead of refilling it in their own transactions. The
// calls' allocations are counted per subnet after their commit; every LOOK_EVERY allocations of a
// subnet (in this process) the window is looked at and, when it holds fewer than WINDOW_LOW rows
// and pool addresses remain beyond its frontier, filled up to WINDOW in a transaction of its own.
// Correctness never depends on it: an allocation that finds no unlocked row refills itself.
import type { Database, Logger } from "@stratus/runtime";
import { refillWindow, WINDOW, WINDOW_LOW, windowLevel } from "./ipam.js";

/**
 * Allocations of a subnet between two looks at its window: well under WINDOW - WINDOW_LOW, so
 * that several processes taking from one subnet still look before it runs low.
 */
const LOOK_EVERY = 64;
/** Subnets counted at most (the counts start again beyond). */
const COUNTED_SUBNETS = 10_000;

export class FreeListKeeper {
  /** Allocations per subnet since its window was last looked at. */
  private readonly taken = new Map<string, number>();
  private readonly due = new Set<string>();
  private running: Promise<void> | undefined;
  private closed = false;

  constructor(
    private readonly db: Database,
    private readonly logger: Logger,
  ) {}

  /** Counts one committed call's allocations (the subnets it took from). */
  note(subnets: Iterable<string>): void {
    for (const subnet of subnets) {
      const n = (this.taken.get(subnet) ?? 0) + 1;
      if (n < LOOK_EVERY) {
        if (this.taken.size >= COUNTED_SUBNETS && !this.taken.has(subnet)) this.taken.clear();
        this.taken.set(subnet, n);
        continue;
      }
      this.taken.delete(subnet);
      this.due.add(subnet);
    }
    if (this.due.size && !this.running && !this.closed) {
      this.running = this.drain().finally(() => {
        this.running = undefined;
      });
    }
  }

  /** Waits for the look in progress, if any; none starts afterwards. */
  async close(): Promise<void> {
    this.closed = true;
    await this.running;
  }

  private async drain(): Promise<void> {
    while (this.due.size && !this.closed) {
      const subnet = this.due.values().next().value!;
      this.due.delete(subnet);
      try {
        const level = await windowLevel(this.db, subnet);
        if (level.rows >= WINDOW_LOW || !level.beyond) continue;
        await this.db.transaction((q) => refillWindow(q, subnet, WINDOW - level.rows));
      } catch (err) {
        this.logger.warn({ err, subnet }, "refilling a subnet's free addresses failed");
      }
    }
  }
}
