// Storage (design.md §4): PostgreSQL through DATABASE_URL, or PGlite (real Postgres in WASM)
// persisted under <dataDir>/<service> when unset. One set of SQL migrations serves both and is
// applied at start, serialised across processes by an advisory lock.
import { createHash } from "node:crypto";
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PGlite, parse as pgliteParse, protocol } from "@electric-sql/pglite";
import pg from "pg";
import type { Logger } from "./log.js";
import { PGliteAutovacuum } from "./pglite-autovacuum.js";
import { cacheFileSizes } from "./pglite-sizes.js";

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

export interface Migration {
  id: string;
  sql: string;
}

/** Reads NNN_name.sql files from a directory, in name order. */
export function migrationsFrom(dir: string): Migration[] {
  return readdirSync(dir)
    .filter((f) => f.endsWith(".sql"))
    .sort()
    .map((f) => ({ id: f.replace(/\.sql$/, ""), sql: readFileSync(join(dir, f), "utf8") }));
}

const RETRYABLE = new Set(["40001", "40P01"]);
const MAX_ATTEMPTS = 8;

function isRetryable(err: unknown): boolean {
  return typeof err === "object" && err !== null && RETRYABLE.has((err as { code?: string }).code ?? "");
}

async function withRetries<T>(attempt: () => Promise<T>): Promise<T> {
  for (let i = 1; ; i++) {
    try {
      return await attempt();
    } catch (err) {
      if (!isRetryable(err) || i >= MAX_ATTEMPTS) throw err;
      await new Promise((r) => setTimeout(r, Math.random() * 5 * i));
    }
  }
}

/** Distinct statement texts prepared automatically per database handle; more run unnamed. */
const AUTO_PREPARE_MAX = 1000;
/**
 * Of those, long ones (statements built from a request's shape, such as the scheduler's
 * candidate search: their plans are large, and a client choosing the shapes could otherwise fill
 * every connection's plan cache) at most this many.
 */
const AUTO_PREPARE_MAX_LONG = 64;
const LONG_STATEMENT = 2048;
const AUTO_PREPARE_MAX_LENGTH = 32_768;

/**
 * Names for statements that carry parameters, derived from their text: each is then prepared once
 * per connection and reused, as pgJDBC and asyncpg do. Before, every call was parsed and planned
 * again: planning was a third of PostgreSQL's time in the boot bench (0.3-0.6 ms for a one-row
 * update, over 0.5 ms for a 0.03 ms look-up). The server still chooses per statement between
 * custom plans and a generic one (its plan cache rules). Statements without parameters (DDL,
 * transaction control, several commands) are never named.
 */
class StatementNames {
  private readonly names = new Map<string, string>();
  private long = 0;

  for(sql: string, params: unknown[] | undefined, options: QueryOptions | undefined): string | undefined {
    if (options?.name) return options.name;
    if (!params?.length || sql.length > AUTO_PREPARE_MAX_LENGTH) return undefined;
    let name = this.names.get(sql);
    if (name !== undefined || this.names.size >= AUTO_PREPARE_MAX) return name;
    const isLong = sql.length > LONG_STATEMENT;
    if (isLong && this.long >= AUTO_PREPARE_MAX_LONG) return undefined;
    if (isLong) this.long++;
    name = `auto_${createHash("sha1").update(sql).digest("hex").slice(0, 24)}`;
    this.names.set(sql, name);
    return name;
  }
}

class PostgresDatabase implements Database {
  readonly kind = "postgres" as const;
  private readonly names = new StatementNames();
  private genericPool: pg.Pool | undefined;
  constructor(
    private readonly pool: pg.Pool,
    private readonly makeGenericPool: () => pg.Pool,
  ) {}

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
    this.genericPool ??= this.makeGenericPool();
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

/** A statement prepared on the PGlite connection: its parameter types and the rows it returns. */
interface PGlitePrepared {
  paramTypes: number[];
  rowDescription: { name: string } | undefined;
}

class PGliteDatabase implements Database {
  readonly kind = "pglite" as const;
  private readonly names = new StatementNames();
  private readonly prepared = new Map<string, PGlitePrepared>();

  constructor(private readonly db: PGlite) {}

  async query<T extends Row>(sql: string, params?: unknown[], options?: QueryOptions): Promise<T[]> {
    const prepared = this.runNamed<T>(sql, params, options, false);
    if (prepared) return prepared;
    if (!params?.length && sql.includes(";")) {
      const results = await this.db.exec(sql);
      return (results.at(-1)?.rows ?? []) as T[];
    }
    return (await this.db.query<T>(sql, params)).rows;
  }

  // PGlite is one connection: its transactions are already serial, so isolation does not matter.
  transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T> {
    return withRetries(() =>
      this.db.transaction(async (t) => {
        const tx: Queryable = {
          query: async <R extends Row>(sql: string, params?: unknown[], options?: QueryOptions) => {
            return (
              (await this.runNamed<R>(sql, params, options, true)) ?? (await t.query<R>(sql, params)).rows
            );
          },
        };
        return fn(tx);
      }),
    );
  }

  /** A statement StatementNames names runs prepared; undefined for the others. */
  private runNamed<T extends Row>(
    sql: string,
    params: unknown[] | undefined,
    options: QueryOptions | undefined,
    inTransaction: boolean,
  ): Promise<T[]> | undefined {
    const name = this.names.for(sql, params, options);
    if (!name) return undefined;
    // As on PostgreSQL, a generic plan is asked for outside transactions only.
    const generic = !inTransaction && options?.genericPlan === true;
    const run = () => this.runPrepared<T>(name, sql, params ?? [], inTransaction, generic);
    // Outside a transaction, also under PGlite's transaction lock, as its own query() is.
    return inTransaction ? run() : this.db._runExclusiveTransaction(run);
  }

  /**
   * A statement with parameters, prepared once under its name and then run with one call into
   * PGlite (bind, execute, sync) instead of PGlite's five for an unnamed statement (parse,
   * describe, bind, describe, execute), each parsed and planned again: planning an unnamed
   * statement sizes every table and index it names, and on PGlite's node filesystem each size is
   * an lseek that Emscripten answers with an fstat (15% of the scheduler's time in the placement
   * bench). The same prepared statements as on PostgreSQL (StatementNames), under the same plan
   * cache rules: `generic` (genericPlan, outside a transaction) runs it with plan_cache_mode =
   * force_generic_plan, set before and reset after on PGlite's one session (the scheduler's
   * candidate search at 10,000 providers: p50 11.8-13.9 -> 8.1-9.6 ms, planning no longer
   * per call). Runs under PGlite's query lock.
   */
  private runPrepared<T extends Row>(
    name: string,
    sql: string,
    params: unknown[],
    inTransaction: boolean,
    generic: boolean,
  ) {
    const { serialize } = protocol;
    const setting = (text: string) => this.db.execProtocolStream(serialize.query(text), { syncToFs: false });
    return this.db._runExclusiveQuery(async () => {
      let p = this.prepared.get(name);
      if (!p) {
        const described = await this.db.execProtocolStream(
          Buffer.concat([
            serialize.parse({ name, text: sql }),
            serialize.describe({ type: "S", name }),
            serialize.sync(),
          ]),
          { syncToFs: false },
        );
        const types = described.find((m) => m.name === "parameterDescription") as
          | { dataTypeIDs: number[] }
          | undefined;
        p = {
          paramTypes: types?.dataTypeIDs ?? [],
          rowDescription: described.find((m) => m.name === "rowDescription"),
        };
        this.prepared.set(name, p);
      }
      const values = params.map((v, i) => {
        if (v === null || v === undefined) return null;
        const serializer = this.db.serializers[p.paramTypes[i] ?? 0];
        return serializer ? serializer(v) : String(v);
      });
      if (generic) await setting("SET plan_cache_mode = force_generic_plan");
      let out: Awaited<ReturnType<PGlite["execProtocolStream"]>>;
      try {
        out = await this.db.execProtocolStream(
          Buffer.concat([
            serialize.bind({ statement: name, values: values as string[] }),
            serialize.execute({}),
            serialize.sync(),
          ]),
          { syncToFs: false },
        );
      } finally {
        if (generic) await setting("RESET plan_cache_mode");
      }
      if (!inTransaction) await this.db.syncToFs();
      const messages = p.rowDescription ? [p.rowDescription, ...out] : out;
      return (pgliteParse.parseResults(messages as never, this.db.parsers)[0]?.rows ?? []) as T[];
    });
  }

  private stopAutovacuum: (() => void) | undefined;

  /** Starts the stand-in for autovacuum (pglite-autovacuum.ts); close() stops it. */
  startAutovacuum(everyMs: number, onError: (err: unknown) => void): void {
    this.stopAutovacuum ??= new PGliteAutovacuum(this).start(everyMs, onError);
  }

  close(): Promise<void> {
    this.stopAutovacuum?.();
    return this.db.close();
  }
}

/** How often PGlite's stand-in for autovacuum looks at the tables (pglite-autovacuum.ts). */
const PGLITE_AUTOVACUUM_MS = 10_000;

export async function openDatabase(options: {
  service: string;
  url?: string | undefined;
  dataDir: string;
  migrations: Migration[];
  logger: Logger;
  poolSize?: number;
  /** PGlite only: how often its autovacuum stand-in looks at the tables (default 10 s). */
  pgliteAutovacuumMs?: number;
}): Promise<Database> {
  let db: Database;
  if (options.url) {
    // jit off: the services run short indexed statements, and a cost estimate that cannot see a
    // LIMIT (an ordered walk that stops after a few rows) crossed jit_above_cost, so each call
    // compiled ~150 functions first: 65-85 ms for a 2 ms statement (scheduler, 10,000 hosts).
    const max = options.poolSize ?? 16;
    const makePool = (size: number, settings: string) => {
      const pool = new pg.Pool({ connectionString: options.url, max: size, options: settings });
      pool.on("error", (err) => options.logger.warn({ err }, "idle postgres client failed"));
      return pool;
    };
    db = new PostgresDatabase(makePool(max, "-c jit=off"), () =>
      makePool(Math.ceil(max / 2), "-c jit=off -c plan_cache_mode=force_generic_plan"),
    );
  } else {
    const dir = join(options.dataDir, options.service);
    if (!existsSync(join(dir, "PG_VERSION"))) await seedFromTemplate(dir);
    const pglite = await PGlite.create(dir);
    if (!cacheFileSizes(pglite.Module)) {
      options.logger.warn("PGlite's filesystem is not the expected one: file sizes are not cached");
    }
    db = new PGliteDatabase(pglite);
  }
  await migrate(db, options.migrations, options.logger);
  if (db instanceof PGliteDatabase) {
    db.startAutovacuum(options.pgliteAutovacuumMs ?? PGLITE_AUTOVACUUM_MS, (err) =>
      options.logger.warn({ err }, "PGlite autovacuum failed"),
    );
  }
  return db;
}

/**
 * A fresh PGlite directory costs an initdb (4 s idle, 20 s on a busy 2-core machine); a copy of an
 * empty cluster made once per machine and PGlite version opens in well under a second. The template
 * is built in a private directory and renamed into place, so concurrent first starts are safe.
 */
async function seedFromTemplate(dir: string): Promise<void> {
  const template = join(tmpdir(), `stratus-pglite-template-${pgliteVersion()}`);
  if (!existsSync(join(template, "PG_VERSION"))) {
    const building = `${template}.${process.pid}.${Date.now()}`;
    const db = await PGlite.create(building);
    await db.query("SELECT 1");
    await db.close();
    try {
      renameSync(building, template);
    } catch {
      rmSync(building, { recursive: true, force: true }); // another process won the race
    }
  }
  mkdirSync(dir, { recursive: true });
  cpSync(template, dir, { recursive: true });
}

function pgliteVersion(): string {
  const require = createRequire(import.meta.url);
  let path = require.resolve("@electric-sql/pglite");
  for (let i = 0; i < 5; i++) {
    path = join(path, "..");
    const pkg = join(path, "package.json");
    if (existsSync(pkg)) return (JSON.parse(readFileSync(pkg, "utf8")) as { version: string }).version;
  }
  return "unknown";
}

const MIGRATION_LOCK = 746_117_001;

export async function migrate(db: Database, migrations: Migration[], logger: Logger): Promise<string[]> {
  return db.transaction(async (tx) => {
    await tx.query("SELECT pg_advisory_xact_lock($1)", [MIGRATION_LOCK]);
    await tx.query(
      "CREATE TABLE IF NOT EXISTS schema_migrations (id text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())",
    );
    const done = new Set(
      (await tx.query<{ id: string }>("SELECT id FROM schema_migrations")).map((r) => r.id),
    );
    const applied: string[] = [];
    for (const m of migrations) {
      if (done.has(m.id)) continue;
      for (const statement of splitStatements(m.sql)) await tx.query(statement);
      await tx.query("INSERT INTO schema_migrations (id) VALUES ($1)", [m.id]);
      applied.push(m.id);
    }
    if (applied.length) logger.info({ applied, backend: db.kind }, "migrations applied");
    return applied;
  });
}

/**
 * Splits a migration into statements on semicolons at line ends, keeping $$-quoted bodies whole,
 * so both drivers run them one by one inside the migration's transaction.
 */
export function splitStatements(sql: string): string[] {
  const out: string[] = [];
  let current = "";
  let inDollar = false;
  for (const line of sql.split("\n")) {
    if (line.trim().startsWith("--") && !inDollar) continue;
    current += `${line}\n`;
    if ((line.match(/\$\$/g)?.length ?? 0) % 2 === 1) inDollar = !inDollar;
    if (!inDollar && line.trimEnd().endsWith(";")) {
      out.push(current.trim());
      current = "";
    }
  }
  if (current.trim()) out.push(current.trim());
  return out;
}
