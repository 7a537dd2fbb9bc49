// The placement model (Placement API semantics, reference §7) over the placement database: its
// resource providers (providers.ts), consumers' allocations (allocations.ts) and the scheduler's
// claims (claims.ts), and the count of the writes made through this process, by which the
// scheduler knows that what it read before a write is stale.
import type { Database, Queryable } from "@stratus/runtime";
import { Allocations } from "./allocations.js";
import { Claims } from "./claims.js";
import { type PlacementWrite, ResourceProviders } from "./providers.js";

export class Placement {
  private writes = 0;
  readonly providers: ResourceProviders;
  readonly allocations: Allocations;
  readonly claims: Claims;

  constructor(readonly db: Database) {
    const writing: PlacementWrite = (fn) => this.writing(fn);
    this.providers = new ResourceProviders(db, writing);
    this.allocations = new Allocations(db, writing);
    this.claims = new Claims(db);
  }

  /**
   * Counts the writes made through this object other than claims (whose effect the scheduler
   * applies to its own view): a view of the providers read before a write finished is stale when
   * this has moved on since.
   */
  get version(): number {
    return this.writes;
  }

  /** Told after each such write (main.ts tells the other schedulers). */
  onWrite: () => void = () => undefined;

  /** Another scheduler wrote placement: what was read before is stale here too. */
  writtenElsewhere(): void {
    this.writes++;
  }

  private async writing<T>(fn: (tx: Queryable) => Promise<T>): Promise<T> {
    try {
      return await this.db.transaction(fn);
    } finally {
      this.writes++;
      this.onWrite();
    }
  }
}
