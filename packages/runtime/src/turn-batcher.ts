// Calls made in one turn of the event loop, gathered and run together: a statement for many rows
// costs the database little more than one for a single row (one plan, one executor start, one
// commit), and the process one round trip.

export interface TurnBatcherOptions {
  /** Batches running at once; later calls wait for one to finish and go in the next. */
  inFlight?: number;
  /** Calls per batch, at most. */
  maxBatch?: number;
  /**
   * When a batch of several items fails, run each item of it again alone, so that one item's
   * trouble (a constraint it breaks, a deadlock it is caught in) reaches only that item.
   */
  aloneOnError?: boolean;
}

/**
 * `add(item)` queues an item and resolves with its own result. The items added in one turn of
 * the event loop are handed to `run` together once the turn is over (up to `maxBatch` a call,
 * `inFlight` calls at once; those that find every slot taken go with the next batch). `run`
 * answers with one result per item, in order; if it throws, every item of that batch rejects
 * (with `aloneOnError`, each item is first run again alone and settles as that run does).
 */
export class TurnBatcher<T, R> {
  private readonly waiting: { item: T; resolve: (r: R) => void; reject: (err: unknown) => void }[] = [];
  private running = 0;
  private scheduled = false;
  private readonly inFlight: number;
  private readonly maxBatch: number;
  private readonly aloneOnError: boolean;

  constructor(
    private readonly run: (items: T[]) => Promise<R[]>,
    options: TurnBatcherOptions = {},
  ) {
    this.inFlight = options.inFlight ?? 4;
    this.maxBatch = options.maxBatch ?? 32;
    this.aloneOnError = options.aloneOnError ?? false;
  }

  add(item: T): Promise<R> {
    return new Promise<R>((resolve, reject) => {
      this.waiting.push({ item, resolve, reject });
      if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(() => {
          this.scheduled = false;
          this.pump();
        });
      }
    });
  }

  private pump(): void {
    while (this.running < this.inFlight && this.waiting.length) {
      const batch = this.waiting.splice(0, this.maxBatch);
      this.running++;
      this.call(batch).finally(() => {
        this.running--;
        this.pump();
      });
    }
  }

  private async call(batch: TurnBatcher<T, R>["waiting"]): Promise<void> {
    try {
      const results = await this.run(batch.map((w) => w.item));
      if (results.length !== batch.length) {
        throw new Error(`batch of ${batch.length} answered with ${results.length} results`);
      }
      for (const [i, w] of batch.entries()) w.resolve(results[i]!);
    } catch (err) {
      if (this.aloneOnError && batch.length > 1) {
        await Promise.all(batch.map((w) => this.call([w])));
        return;
      }
      for (const w of batch) w.reject(err);
    }
  }
}
