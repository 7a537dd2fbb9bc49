// PGlite's stand-in for autovacuum: a table past autovacuum's vacuum threshold (50 + 20% of its
// live rows dead) is vacuumed, one past its analyze threshold (50 + 10% of its live rows changed
// since the last ANALYZE) is analyzed, one below them is left alone.
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

/** A table's counter in pg_stat_user_tables, this session's counts flushed first. */
async function counter(table: string, column: "n_dead_tup" | "analyze_count"): Promise<number> {
  await db.query("SELECT pg_stat_force_next_flush()");
  const [row] = await db.query<{ n: string }>(
    `SELECT ${column} AS n FROM pg_stat_user_tables WHERE relname = $1`,
    [table],
  );
  return Number(row!.n);
}
const dead = (table: string) => counter(table, "n_dead_tup");
const analyzeCount = (table: string) => counter(table, "analyze_count");

describe("PGlite autovacuum", () => {
  it("vacuums the tables past the threshold and only those", async () => {
    // Both tables were filled by the migration: 100 rows changed, past 50 + 10 for analyze.
    // 100 live rows: the threshold is 50 + 20 dead rows.
    for (let i = 0; i < 3; i++) await db.query("UPDATE hot SET n = n + 1");
    await db.query("UPDATE calm SET n = n + 1 WHERE id <= 30");
    // (Page pruning during the updates already takes some dead versions away: not all 300.)
    expect(await dead("hot")).toBeGreaterThan(70);
    const calm = await dead("calm");
    expect(calm).toBeGreaterThan(0);
    expect(calm).toBeLessThanOrEqual(70);

    const first = await new PGliteAutovacuum(db).tick();
    expect(first.vacuumed).toEqual(["public.hot"]);
    expect(first.analyzed).toEqual(["public.hot", "public.calm"]);
    expect(await dead("hot")).toBe(0);
    expect(await dead("calm")).toBe(calm);
    // The planner now knows the tables' sizes and columns.
    const stats = await db.query<{ tablename: string }>(
      "SELECT DISTINCT tablename FROM pg_stats WHERE tablename IN ('hot', 'calm') ORDER BY tablename",
    );
    expect(stats.map((r) => r.tablename)).toEqual(["calm", "hot"]);
    // Nothing is due any more.
    expect(await new PGliteAutovacuum(db).tick()).toEqual({ vacuumed: [], analyzed: [] });
  });

  it("analyzes a table once enough of its rows changed since its last ANALYZE", async () => {
    const before = await analyzeCount("calm");
    await db.query("UPDATE calm SET n = n + 1 WHERE id <= 35");
    // 35 changed: under 50 + 10.
    expect(await new PGliteAutovacuum(db).tick()).toEqual({ vacuumed: [], analyzed: [] });
    expect(await analyzeCount("calm")).toBe(before);
    await db.query("UPDATE calm SET n = n + 1 WHERE id > 65");
    // 70 changed: analyzed (and vacuumed too if the updates left enough dead rows).
    expect((await new PGliteAutovacuum(db).tick()).analyzed).toEqual(["public.calm"]);
    expect(await analyzeCount("calm")).toBe(before + 1);
  });
});
