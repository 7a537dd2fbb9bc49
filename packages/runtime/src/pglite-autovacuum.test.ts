// PGlite's stand-in for autovacuum: a table past autovacuum's threshold (50 + 20% of its live
// rows dead) is vacuumed, one below it is left alone.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createLogger } from "./log.js";
import { PGliteAutovacuum } from "./pglite-autovacuum.js";
import { type Database, openDatabase } from "./storage.js";

const dir = mkdtempSync(join(tmpdir(), "stratus-pglite-autovacuum-"));
let db: Database;

beforeAll(async () => {
  db = await openDatabase({
    service: "s",
    dataDir: dir,
    logger: createLogger("test", "error"),
    migrations: [
      {
        id: "001",
        sql: `CREATE TABLE hot (id int PRIMARY KEY, n int NOT NULL);
CREATE TABLE calm (id int PRIMARY KEY, n int NOT NULL);
INSERT INTO hot SELECT g, 0 FROM generate_series(1, 100) g;
INSERT INTO calm SELECT g, 0 FROM generate_series(1, 100) g;`,
      },
    ],
  });
});
afterAll(async () => {
  await db?.close();
  rmSync(dir, { recursive: true, force: true });
});

async function dead(table: string): Promise<number> {
  await db.query("SELECT pg_stat_force_next_flush()");
  const [row] = await db.query<{ n: string }>(
    "SELECT n_dead_tup AS n FROM pg_stat_user_tables WHERE relname = $1",
    [table],
  );
  return Number(row!.n);
}

describe("PGlite autovacuum", () => {
  it("vacuums the tables past the threshold and only those", async () => {
    // 100 live rows: the threshold is 50 + 20 dead rows.
    for (let i = 0; i < 3; i++) await db.query("UPDATE hot SET n = n + 1");
    await db.query("UPDATE calm SET n = n + 1 WHERE id <= 30");
    // (Page pruning during the updates already takes some dead versions away: not all 300.)
    expect(await dead("hot")).toBeGreaterThan(70);
    const calm = await dead("calm");
    expect(calm).toBeGreaterThan(0);
    expect(calm).toBeLessThanOrEqual(70);

    const vacuumed = await new PGliteAutovacuum(db).tick();
    expect(vacuumed).toEqual(["public.hot"]);
    expect(await dead("hot")).toBe(0);
    expect(await dead("calm")).toBe(calm);
    // Nothing is due any more.
    expect(await new PGliteAutovacuum(db).tick()).toEqual([]);
  });
});
