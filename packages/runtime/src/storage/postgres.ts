// A service's database on a PostgreSQL server: a pool of connections, statements prepared per
// connection under names derived from their text, and a second pool, opened when first needed,
// for statements that ask for a generic plan.
import pg from "pg";
import { Gauge } from "prom-client";
import type { Logger } from "../log.js";
import { metricsRegistry } from "../metrics.js";
import { type Database, type Queryable, type QueryOptions, type Row, withRetries } from "./database.js";
import { StatementNames } from "./statement-names.js";

export interface PostgresOptions {
  url: string;
  /** Connections of the main pool; the generic-plan pool has at most half as many. */
  poolSize: number;
  /** Statement texts prepared automatically (StatementNames). */
  preparedStatements: number;
  logger: Logger;
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
    const pool = new pg.Pool({ connectionString: this.options.url, max: size, options: settings });
    pool.on("error", (err) => this.options.logger.warn({ err }, "idle postgres client failed"));
    return pool;
  }

  async query<T extends Row>(sql: string, params?: unknown[], options?: QueryOptions): Promise<T[]> {
    const name = this.names.for(sql, params, options);
    if (name && options?.genericPlan) return this.queryGeneric<T>(name, sql, params);
    const res = name
      ? await this.pool.query({ name, text: sql, values: params as unknown[] })
      : await this.pool.query(sql, params as unknown[]);
    return res.rows as T[];
  }

  private async queryGeneric<T extends Row>(name: string, sql: string, params?: unknown[]): Promise<T[]> {
    // A pool of its own whose connections start with plan_cache_mode = force_generic_plan: setting
    // and resetting it around each call on a shared connection cost two more round trips per call.
    if (!this.genericPool) {
      this.genericPool = this.makePool(
        Math.ceil(this.options.poolSize / 2),
        "-c jit=off -c plan_cache_mode=force_generic_plan",
      );
      pools.set("generic", this.genericPool);
    }
    return (await this.genericPool.query({ name, text: sql, values: params as unknown[] })).rows as T[];
  }

  transaction<T>(
    fn: (tx: Queryable) => Promise<T>,
    options?: { isolation?: "read committed" | "serializable" },
  ): Promise<T> {
    return withRetries(async () => {
      const client = await this.pool.connect();
      try {
        await client.query(`BEGIN ISOLATION LEVEL ${(options?.isolation ?? "read committed").toUpperCase()}`);
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
      } finally {
        client.release();
      }
    });
  }

  async close(): Promise<void> {
    await Promise.all([this.pool.end(), this.genericPool?.end()]);
  }
}
