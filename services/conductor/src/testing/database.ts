// The compute database for the conductor's unit tests: PGlite in a temporary directory with the
// conductor's migrations.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createLogger, type Database, migrationsFrom, openDatabase } from "@stratus/runtime";

/** Opens a new database; `close` also removes its directory. */
export async function openTestDatabase(name: string): Promise<{ db: Database; close(): Promise<void> }> {
  const dir = mkdtempSync(join(tmpdir(), `stratus-${name}-`));
  const db = await openDatabase({
    service: "conductor",
    dataDir: dir,
    migrations: migrationsFrom(new URL("../../migrations", import.meta.url).pathname),
    logger: createLogger(name, "silent"),
  });
  return {
    db,
    close: async () => {
      await db.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** The same database, showing `seen` each statement run outside a transaction; closing it is a no-op. */
export function watched(db: Database, seen: (sql: string) => void): Database {
  return {
    ...db,
    kind: db.kind,
    query: (sql, params, options) => {
      seen(sql);
      return db.query(sql, params, options);
    },
    transaction: (fn, options) => db.transaction(fn, options),
    close: () => Promise.resolve(),
  };
}
