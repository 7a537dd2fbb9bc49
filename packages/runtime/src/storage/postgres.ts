// A service's database on a PostgreSQL server: a pool of connections, statements prepared per
// connection under names derived from their text, and a second pool, opened when first needed,
// for statements that ask for a generic plan. A server that cannot be reached or has no
// connection left, and a pool with none free in time, are `unavailable` (503, RPC Unavailable),
// never an internal error; a prepared statement whose table changed under it (another replica
// migrated) runs once more on a new connection.
import pg from "pg";
import { Gauge } from "prom-client";
import { StratusError } from "../errors.js";
import type { Logger } from "../log.js";
import { metricsRegistry } from "../metrics.js";
import { type Database, type Queryable, type QueryOptions, type Row, withRetries } from "./database.js";
import { StatementNames } from "./statement-names.js";

export interface PostgresOptions {
  url: string;
  /** Connections of the main pool. */
  poolSize: number;
  /**
   * Connections of the pool for statements asking for a generic plan; 0: none, such statements
   * run on the main pool and are planned as any other.
   */
  genericPoolSize: number;
  /** How long a statement waits for a free connection of its pool before it is `unavailable`. */
  poolWaitMs: number;
  /** Statement texts prepared automatically (StatementNames). */
  preparedStatements: number;
  logger: Logger;
}

/**
 * SQLSTATEs of a server that cannot take the statement now: too many connections (53300), out of
 * resources (53000, 53200), shutting down or starting (57P01-57P03), connection failures (08xxx).
 */
const UNAVAILABLE_STATES = new Set([
  "53000",
  "53200",
  "53300",
  "57P01",
  "57P02",
  "57P03",
  "08000",
  "08001",
  "08003",
  "08004",
  "08006",
]);
/** Socket errors of a server that cannot be reached. */
const UNREACHABLE = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ETIMEDOUT",
  "EHOSTUNREACH",
  "ENOTFOUND",
  "EPIPE",
  "EAI_AGAIN",
]);
/** pg-pool's and pg's own words for a connection not had in time or lost. */
const LOST =
  /timeout exceeded when trying to connect|Connection terminated|Client has encountered a connection error/;

/** Refused at connection start, before any statement ran: safe to try again at once. */
const REFUSED_AT_START = new Set(["53300", "57P03"]);
const START_ATTEMPTS = 3;

/** "cached plan must not change result type": the statement did not run. */
const PLAN_CHANGED = "0A000";

function sqlState(err: unknown): string {
  return typeof err === "object" && err !== null ? String((err as { code?: unknown }).code ?? "") : "";
}

/** Whether the error is the server's or the network's state rather than the statement's. */
export function isUnavailable(err: unknown): boolean {
  const code = sqlState(err);
  return (
    UNAVAILABLE_STATES.has(code) || UNREACHABLE.has(code) || (err instanceof Error && LOST.test(err.message))
  );
}

function unavailable(err: unknown): StratusError {
  return new StratusError("unavailable", "the database is unavailable", { cause: err });
}

/** The pools of this process by name ("main", "generic"), read when metrics are scraped. */
const pools = new Map<string, pg.Pool>();
new Gauge({
  name: "stratus_db_pool_connections",
  help: "PostgreSQL pool connections of this process, by pool and state (idle, busy, waiting: callers queued for one)",
  labelNames: ["pool", "state"] as const,
  registers: [metricsRegistry],
  collect() {
    for (const [name, pool] of pools) {
      this.set({ pool: name, state: "idle" }, pool.idleCount);
      this.set({ pool: name, state: "busy" }, pool.totalCount - pool.idleCount);
      this.set({ pool: name, state: "waiting" }, pool.waitingCount);
    }
  },
});

export class PostgresDatabase implements Database {
  readonly kind = "postgres" as const;
  private readonly names: StatementNames;
  private readonly pool: pg.Pool;
  private genericPool: pg.Pool | undefined;

  constructor(private readonly options: PostgresOptions) {
    this.names = new StatementNames(options.preparedStatements);
    this.pool = this.makePool(options.poolSize, "-c jit=off");
    pools.set("main", this.pool);
  }

  /**
   * jit off: the services run short indexed statements, and a cost estimate that cannot see a
   * LIMIT (an ordered walk that stops after a few rows) crossed jit_above_cost, so each call
   * compiled its expressions for far longer than the statement then ran (docs/performance.md).
   */
  private makePool(size: number, settings: string): pg.Pool {
    const pool = new pg.Pool({
      connectionString: this.options.url,
      max: size,
      options: settings,
      connectionTimeoutMillis: this.options.poolWaitMs,
    });
    pool.on("error", (err) => this.options.logger.warn({ err }, "idle postgres client failed"));
    return pool;
  }

  /**
   * A connection of the pool for fn, given back afterwards (closed if it failed). A server
   * refusing new connections for now (too many clients, starting up) is asked again a few times;
   * a prepared statement whose result type changed (another replica altered its table) runs once
   * more on a new connection, which has prepared nothing yet; what is still a server or network
   * failure after that is `unavailable`.
   */
  private async withClient<T>(pool: pg.Pool, fn: (client: pg.PoolClient) => Promise<T>): Promise<T> {
    for (let planChanged = false; ; planChanged = true) {
      const client = await this.connect(pool);
      let discard: Error | undefined;
      try {
        return await fn(client);
      } catch (err) {
        if (sqlState(err) === PLAN_CHANGED && !planChanged) {
          // This connection holds the statement prepared for the table as it was: closed, not
          // reused. The statement did not run (the error comes from planning), so it runs again.
          discard = err as Error;
          this.options.logger.info({ err }, "a prepared statement's table changed: running it once more");
          continue;
        }
        if (isUnavailable(err)) {
          discard = err as Error;
          throw unavailable(err);
        }
        throw err;
      } finally {
        client.release(discard);
      }
    }
  }

  private async connect(pool: pg.Pool): Promise<pg.PoolClient> {
    for (let i = 1; ; i++) {
      try {
        return await pool.connect();
      } catch (err) {
        if (REFUSED_AT_START.has(sqlState(err)) && i < START_ATTEMPTS) {
          await new Promise((r) => setTimeout(r, 20 * 2 ** i * (0.5 + Math.random())));
          continue;
        }
        throw isUnavailable(err) ? unavailable(err) : err;
      }
    }
  }

  async query<T extends Row>(sql: string, params?: unknown[], options?: QueryOptions): Promise<T[]> {
    const name = this.names.for(sql, params, options);
    const pool = name && options?.genericPlan ? this.generic() : this.pool;
    return this.withClient(pool, async (client) => {
      const res = name
        ? await client.query({ name, text: sql, values: params as unknown[] })
        : await client.query(sql, params as unknown[]);
      return res.rows as T[];
    });
  }

  /**
   * The pool whose connections start with plan_cache_mode = force_generic_plan (setting and
   * resetting it around each call on a shared connection cost two more round trips per call);
   * without one (size 0), the main pool.
   */
  private generic(): pg.Pool {
    if (this.options.genericPoolSize <= 0) return this.pool;
    if (!this.genericPool) {
      this.genericPool = this.makePool(
        this.options.genericPoolSize,
        "-c jit=off -c plan_cache_mode=force_generic_plan",
      );
      pools.set("generic", this.genericPool);
    }
    return this.genericPool;
  }

  transaction<T>(
    fn: (tx: Queryable) => Promise<T>,
    options?: { isolation?: "read committed" | "serializable" },
  ): Promise<T> {
    return withRetries(() =>
      this.withClient(this.pool, async (client) => {
        await client.query(`BEGIN ISOLATION LEVEL ${(options?.isolation ?? "read committed").toUpperCase()}`);
        try {
          const tx: Queryable = {
            query: async <R extends Row>(sql: string, params?: unknown[], opts?: QueryOptions) => {
              const name = this.names.for(sql, params, opts);
              return (
                name
                  ? await client.query({ name, text: sql, values: params as unknown[] })
                  : await client.query(sql, params as unknown[])
              ).rows as R[];
            },
          };
          const result = await fn(tx);
          await client.query("COMMIT");
          return result;
        } catch (err) {
          await client.query("ROLLBACK").catch(() => undefined);
          throw err;
        }
      }),
    );
  }

  async close(): Promise<void> {
    await Promise.all([this.pool.end(), this.genericPool?.end()]);
  }
}
