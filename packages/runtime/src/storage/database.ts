// What every service's storage offers, on PostgreSQL and on PGlite alike (design.md §4), and the
// rules both backends share: which failed transactions run again.

export type Row = Record<string, unknown>;

export interface QueryOptions {
  /**
   * PostgreSQL: prepare the statement under this name once per connection and reuse it (no parse,
   * and no planning once the server settles on a generic plan). One name must always carry the
   * same SQL text. PGlite prepares it too (on its one connection).
   */
  name?: string;
  /**
   * PostgreSQL: run the prepared statement (under `name`, or the name derived from its text)
   * with plan_cache_mode = force_generic_plan (on connections of a second pool, opened when first
   * needed, at most half as many as the main pool's), for a
   * statement whose generic plan is known to be good but that the server would otherwise re-plan
   * on every call (its cost model prefers custom plans).
   */
  genericPlan?: boolean;
}

export interface Queryable {
  query<T extends Row = Row>(sql: string, params?: unknown[], options?: QueryOptions): Promise<T[]>;
}

export interface Database extends Queryable {
  readonly kind: "postgres" | "pglite";
  /**
   * Runs fn in a transaction. Serialization failures and deadlocks are retried (fn must be safe
   * to run again); anything else rolls back and rethrows.
   */
  transaction<T>(
    fn: (tx: Queryable) => Promise<T>,
    options?: { isolation?: "read committed" | "serializable" },
  ): Promise<T>;
  close(): Promise<void>;
}

/** Serialization failure and deadlock: the transaction may succeed if run again. */
const RETRYABLE = new Set(["40001", "40P01"]);
const MAX_ATTEMPTS = 8;

function isRetryable(err: unknown): boolean {
  return typeof err === "object" && err !== null && RETRYABLE.has((err as { code?: string }).code ?? "");
}

/** Runs a transaction again (after a short random pause) while it fails in a retryable way. */
export async function withRetries<T>(attempt: () => Promise<T>): Promise<T> {
  for (let i = 1; ; i++) {
    try {
      return await attempt();
    } catch (err) {
      if (!isRetryable(err) || i >= MAX_ATTEMPTS) throw err;
      await new Promise((r) => setTimeout(r, Math.random() * 5 * i));
    }
  }
}
