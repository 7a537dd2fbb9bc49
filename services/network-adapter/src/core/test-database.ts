// For in-process tests: the network-adapter's database with its migrations, on each backend —
// PGlite in a temporary folder, and a temporary PostgreSQL database when a server answers (CI
// sets STRATUS_REQUIRE_POSTGRES=1, and then postgresAvailable fails instead of letting them skip).
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createLogger, type Database, migrationsFrom, openDatabase } from "@stratus/runtime";
import { createTempDatabase, postgresAvailable } from "@stratus/runtime/testing";

export type Backend = "PGlite" | "PostgreSQL";

/** The backends to run on, each with whether it is there. */
export async function testBackends(): Promise<[Backend, boolean][]> {
  return [
    ["PGlite", true],
    ["PostgreSQL", await postgresAvailable()],
  ];
}

/** A fresh database (`name` for PostgreSQL's); close() drops it. */
export async function openTestDatabase(
  backend: Backend,
  name: string,
): Promise<{ db: Database; close: () => Promise<void> }> {
  const temp = backend === "PostgreSQL" ? await createTempDatabase(name) : undefined;
  const dataDir = mkdtempSync(join(tmpdir(), `${name}-`));
  const db = await openDatabase({
    service: "network-adapter",
    url: temp?.url,
    dataDir,
    migrations: migrationsFrom(new URL("../../migrations", import.meta.url).pathname),
    logger: createLogger("test", "warn"),
    poolSize: 4,
  });
  return {
    db,
    close: async () => {
      await db.close();
      await temp?.drop();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
