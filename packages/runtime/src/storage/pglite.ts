// A service's embedded database: PGlite (real Postgres compiled to WASM, one connection, in this
// process) persisted under <dataDir>/<service>.
import { cpSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PGlite, parse as pgliteParse, protocol } from "@electric-sql/pglite";
import type { Logger } from "../log.js";
import { type Database, type Queryable, type QueryOptions, type Row, withRetries } from "./database.js";
import { cacheFileSizes } from "./pglite-sizes.js";
import { StatementNames } from "./statement-names.js";

/** A statement prepared on the PGlite connection: its parameter types and the rows it returns. */
interface PGlitePrepared {
  paramTypes: number[];
  rowDescription: { name: string } | undefined;
}

export class PGliteDatabase implements Database {
  readonly kind = "pglite" as const;
  private readonly names: StatementNames;
  private readonly prepared = new Map<string, PGlitePrepared>();

  constructor(
    private readonly db: PGlite,
    preparedStatements: number,
  ) {
    this.names = new StatementNames(preparedStatements);
  }

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
   * an lseek that Emscripten answers with an fstat. The same prepared statements as on PostgreSQL
   * (StatementNames), under the same plan cache rules: `generic` (genericPlan, outside a
   * transaction) runs it with plan_cache_mode = force_generic_plan, set before and reset after on
   * PGlite's one session, so such a statement is not planned per call. Runs under PGlite's query
   * lock.
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

  close(): Promise<void> {
    return this.db.close();
  }
}

/** Opens (creating it when new) the PGlite database of `service` under `dataDir`. */
export async function openPGlite(options: {
  service: string;
  dataDir: string;
  preparedStatements: number;
  logger: Logger;
}): Promise<PGliteDatabase> {
  const dir = join(options.dataDir, options.service);
  if (!existsSync(join(dir, "PG_VERSION"))) await seedFromTemplate(dir);
  const pglite = await PGlite.create(dir);
  if (!cacheFileSizes(pglite.Module)) {
    options.logger.warn("PGlite's filesystem is not the expected one: file sizes are not cached");
  }
  return new PGliteDatabase(pglite, options.preparedStatements);
}

/**
 * A fresh PGlite directory costs an initdb (seconds); a copy of an empty cluster made once per
 * machine and PGlite version opens in well under a second. The template is built in a private
 * directory and renamed into place, so concurrent first starts are safe.
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
