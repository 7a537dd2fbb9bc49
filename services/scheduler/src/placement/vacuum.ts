// Vacuuming the tables claims write, from the scheduler itself. Every claim rewrites its
// providers' inventory rows and generations, and not in place (`free` is indexed): the old
// versions stay in the tables and their indexes until a VACUUM, and every search and claim walks
// them. PGlite has no autovacuum (the runtime's stand-in looks every 10 s), and a scheduler at
// hundreds of claims a second leaves thousands in that time. So, like autovacuum but sooner, these
// tables are vacuumed once `after` writes went through this scheduler's Placement: a few ms each
// (bench/placement, 1,000 hosts / 100 segments on PGlite: a search 3.1 -> 1.3 ms, a batch of
// claims 7.7 -> 4.8 ms, claims/s 324-429 -> 491-525). main.ts runs it on PGlite only.
import type { Logger } from "@stratus/runtime";
import type { Placement } from "./placement.js";

const TABLES = "inventories, resource_providers, allocations, consumers";

export class PlacementVacuum {
  private running = false;
  private vacuumedAt = 0;

  constructor(
    private readonly placement: Placement,
    private readonly after: number,
    private readonly logger?: Logger,
  ) {}

  /** Vacuums when `after` writes went through since the last time; true when it did. */
  async maybe(): Promise<boolean> {
    if (this.running || this.placement.churn - this.vacuumedAt < this.after) return false;
    this.running = true;
    this.vacuumedAt = this.placement.churn;
    try {
      await this.placement.db.query(`VACUUM ${TABLES}`);
      return true;
    } catch (err) {
      this.logger?.debug({ err }, "VACUUM failed");
      return false;
    } finally {
      this.running = false;
    }
  }

  /** Checks every `everyMs`; returns the stop function. */
  start(everyMs: number): () => void {
    const timer = setInterval(() => void this.maybe(), everyMs);
    timer.unref();
    return () => clearInterval(timer);
  }
}
