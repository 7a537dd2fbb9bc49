// Storage (design.md §4): PostgreSQL through a URL, or PGlite (real Postgres in WASM) persisted
// under <dataDir>/<service> when there is none. Opening applies the service's migrations and
// starts the table maintenance its statistics policy asks for.
import { parseConfig, storageConfig } from "../config.js";
import type { Logger } from "../log.js";
import type { Database } from "./database.js";
import { TableMaintenance } from "./maintenance.js";
import { type Migration, migrate } from "./migrate.js";
import { openPGlite } from "./pglite.js";
import { PostgresDatabase } from "./postgres.js";
import { hasWork, statisticsPolicy } from "./statistics.js";

/** How a database is run; unset, the defaults of the storage settings (config.ts). */
export interface StorageOptions {
  /** PostgreSQL: connections in the main pool. */
  poolSize?: number;
  /** PostgreSQL: connections for statements asking for a generic plan (0: the main pool's). */
  genericPoolSize?: number;
  /** PostgreSQL: how long a statement waits for a free connection before it is unavailable. */
  poolWaitMs?: number;
  /** Statement texts prepared automatically per database. */
  preparedStatements?: number;
  /** How often the statistics policy looks at the tables (0: never). */
  statisticsMs?: number;
  /** The growth after which a table is analyzed (statistics.ts; 0: not for growth). */
  analyzeGrowth?: number;
}

export async function openDatabase(
  options: StorageOptions & {
    service: string;
    url?: string | undefined;
    dataDir: string;
    migrations: Migration[];
    logger: Logger;
  },
): Promise<Database> {
  const { logger } = options;
  const defaults = parseConfig(storageConfig, {});
  const preparedStatements = options.preparedStatements ?? defaults.DB_PREPARED_STATEMENTS;
  const db = options.url
    ? new PostgresDatabase({
        url: options.url,
        poolSize: options.poolSize ?? defaults.DB_POOL_SIZE,
        genericPoolSize:
          options.genericPoolSize ?? Math.ceil((options.poolSize ?? defaults.DB_POOL_SIZE) / 2),
        poolWaitMs: options.poolWaitMs ?? defaults.DB_POOL_WAIT_MS,
        preparedStatements,
        logger,
      })
    : await openPGlite({ service: options.service, dataDir: options.dataDir, preparedStatements, logger });
  await migrate(db, options.migrations, logger);

  const policy = statisticsPolicy(db.kind, options.analyzeGrowth ?? defaults.DB_ANALYZE_GROWTH);
  const everyMs = options.statisticsMs ?? defaults.DB_STATISTICS_MS;
  if (everyMs <= 0 || !hasWork(policy)) return db;
  const stop = new TableMaintenance(db, policy).start(everyMs, (err) =>
    logger.warn({ err }, "table maintenance failed"),
  );
  return withCloser(db, stop);
}

/** The database, with `before` run when it is closed. */
function withCloser(db: Database, before: () => void): Database {
  return {
    kind: db.kind,
    query: (sql, params, options) => db.query(sql, params, options),
    transaction: (fn, options) => db.transaction(fn, options),
    close() {
      before();
      return db.close();
    },
  };
}
