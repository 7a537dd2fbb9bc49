// The statistics policy applied to real databases. On PGlite (autovacuum's rules): a table past
// autovacuum's vacuum threshold (50 + 20% of its live rows dead) is vacuumed, one past its analyze
// threshold (50 + 10% of its live rows changed since the last ANALYZE) is analyzed, one below them
// is left alone. On PostgreSQL (growth only): a table is analyzed once it has doubled.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createLogger } from "../log.js";
import { createTempDatabase, postgresAvailable, type TempDatabase } from "../testing/postgres.js";
import type { Database } from "./database.js";
import { TableMaintenance } from "./maintenance.js";
import { openDatabase } from "./open.js";
import { statisticsPolicy } from "./statistics.js";

const dir = mkdtempSync(join(tmpdir(), "stratus-pglite-autovacuum-"));
let db: Database;

beforeAll(async () => {
  db = await openDatabase({
    service: "s",
    dataDir: dir,
    // The tests below tick by hand.
    statisticsMs: 0,
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

/** The policy PGlite runs by default: autovacuum's rules. */
const autovacuum = () => new TableMaintenance(db, statisticsPolicy("pglite", 0));

describe("table maintenance on PGlite", () => {
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

    const first = await autovacuum().tick();
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
    expect(await autovacuum().tick()).toEqual({ vacuumed: [], analyzed: [] });
  });

  it("analyzes a table once enough of its rows changed since its last ANALYZE", async () => {
    const before = await analyzeCount("calm");
    await db.query("UPDATE calm SET n = n + 1 WHERE id <= 35");
    // 35 changed: under 50 + 10.
    expect(await autovacuum().tick()).toEqual({ vacuumed: [], analyzed: [] });
    expect(await analyzeCount("calm")).toBe(before);
    await db.query("UPDATE calm SET n = n + 1 WHERE id > 65");
    // 70 changed: analyzed (and vacuumed too if the updates left enough dead rows).
    expect((await autovacuum().tick()).analyzed).toEqual(["public.calm"]);
    expect(await analyzeCount("calm")).toBe(before + 1);
  });
});

describe("table maintenance on PostgreSQL", () => {
  let temp: TempDatabase | undefined;
  let pgdb: Database | undefined;
  afterAll(async () => {
    await pgdb?.close();
    await temp?.drop();
  });

  it("analyzes a table each time it has doubled (and grown by 100 rows), and only then", async (ctx) => {
    if (!(await postgresAvailable())) {
      console.warn("SKIPPED: no PostgreSQL server answers at the test URL (set STRATUS_TEST_POSTGRES_URL)");
      ctx.skip();
    }
    temp = await createTempDatabase();
    // One connection: the rows it writes are counted in the statistics views once it flushes.
    pgdb = await openDatabase({
      service: "s",
      url: temp.url,
      dataDir: "",
      poolSize: 1,
      statisticsMs: 0,
      logger: createLogger("test", "error"),
      migrations: [{ id: "001", sql: "CREATE TABLE servers (id serial PRIMARY KEY, n int NOT NULL);" }],
    });
    const db = pgdb;
    const doubling = new TableMaintenance(db, statisticsPolicy("postgres", 2));
    const create = async (n: number) => {
      await db.query("INSERT INTO servers (n) SELECT g FROM generate_series(1, $1::int) g", [n]);
      await db.query("SELECT pg_stat_force_next_flush()");
    };
    await create(50);
    expect(await doubling.tick()).toEqual({ vacuumed: [], analyzed: [] });
    await create(60);
    expect(await doubling.tick()).toEqual({ vacuumed: [], analyzed: ["public.servers"] });
    // The next once the table has doubled (110 -> 220 and more), not before.
    await create(100);
    expect(await doubling.tick()).toEqual({ vacuumed: [], analyzed: [] });
    await create(20);
    expect(await doubling.tick()).toEqual({ vacuumed: [], analyzed: ["public.servers"] });
    const [servers] = await db.query<{ reltuples: number }>(
      "SELECT reltuples::int AS reltuples FROM pg_class WHERE relname = 'servers'",
    );
    expect(servers!.reltuples).toBe(230);
    // On PostgreSQL autovacuum's own rules are left to it: 230 rows changed, nothing analyzed.
    await db.query("UPDATE servers SET n = n + 1");
    await db.query("SELECT pg_stat_force_next_flush()");
    expect(await doubling.tick()).toEqual({ vacuumed: [], analyzed: [] });
  });
});
