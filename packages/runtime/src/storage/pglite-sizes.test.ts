// PGlite's file sizes kept in memory: tables that grow, shrink (VACUUM truncates), are rewritten
// (TRUNCATE, VACUUM FULL) and reopened keep every row, and PostgreSQL's idea of each relation's
// size is the file's size on disk.
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PGlite } from "@electric-sql/pglite";
import { afterEach, describe, expect, it } from "vitest";
import { createLogger } from "../log.js";
import type { Database } from "./database.js";
import { openDatabase } from "./open.js";
import { cacheFileSizes } from "./pglite-sizes.js";

const logger = createLogger("test", "error");
const migrations = [
  {
    id: "001",
    sql: "CREATE TABLE t (id int PRIMARY KEY, pad text NOT NULL);\nCREATE INDEX t_pad ON t (pad);",
  },
];

describe("PGlite file sizes", () => {
  const cleanups: (() => Promise<void>)[] = [];
  afterEach(async () => {
    while (cleanups.length) await cleanups.pop()!();
  });

  function tempDir(): string {
    const dir = mkdtempSync(join(tmpdir(), "stratus-pglite-sizes-"));
    cleanups.push(async () => rmSync(dir, { recursive: true, force: true }));
    return dir;
  }
  const open = (dir: string) => openDatabase({ service: "s", dataDir: dir, migrations, logger });

  /**
   * The size of a relation as PostgreSQL's storage manager counts it (ANALYZE records the block
   * count it gets from lseek in pg_class.relpages), and its file's size on disk.
   */
  async function sizes(db: Database, dir: string, relation: string): Promise<[number, number]> {
    await db.query("ANALYZE t");
    const [row] = await db.query<{ path: string; pages: number }>(
      "SELECT pg_relation_filepath(oid) AS path, relpages AS pages FROM pg_class WHERE relname = $1::text",
      [relation],
    );
    return [row!.pages * 8192, statSync(join(dir, "s", row!.path)).size];
  }

  async function fill(db: Database, from: number, to: number): Promise<void> {
    await db.query(
      "INSERT INTO t SELECT g, repeat(md5(g::text), 12) FROM generate_series($1::int, $2::int) g",
      [from, to],
    );
  }

  const content = (db: Database) =>
    db.query<{ n: number; s: string }>("SELECT count(*)::int AS n, sum(id)::text AS s FROM t");

  it("applies once per module, and refuses a module of another shape", async () => {
    const dir = tempDir();
    const pg = await PGlite.create(dir);
    cleanups.push(() => pg.close());
    expect(cacheFileSizes(pg.Module)).toBe(true);
    expect(cacheFileSizes(pg.Module)).toBe(true);
    expect(cacheFileSizes({})).toBe(false);
    expect(cacheFileSizes({ NODEFS: { stream_ops: {}, node_ops: {} } })).toBe(false);
  });

  it("keeps every row while tables grow, shrink, are rewritten and reopened", async () => {
    const dir = tempDir();
    const db = await open(dir);

    // Growth: ~2.4 MB of rows, one insert after another (each extends the table and its indexes).
    for (let i = 0; i < 20; i++) await fill(db, i * 250 + 1, (i + 1) * 250);
    expect(await content(db)).toEqual([{ n: 5000, s: String((5000 * 5001) / 2) }]);
    const [grown, grownOnDisk] = await sizes(db, dir, "t");
    expect(grown).toBe(grownOnDisk);
    expect(grown).toBeGreaterThan(2_000_000);
    for (const index of ["t_pkey", "t_pad"]) {
      const [size, onDisk] = await sizes(db, dir, index);
      expect(size).toBe(onDisk);
    }

    // Shrink: VACUUM gives the empty tail back to the file system (a truncate), then growth
    // again must append after the new end, not after the old one.
    await db.query("DELETE FROM t WHERE id > 1000");
    await db.query("VACUUM t");
    const [shrunk, shrunkOnDisk] = await sizes(db, dir, "t");
    expect(shrunk).toBe(shrunkOnDisk);
    expect(shrunk).toBeLessThan(grown / 2);
    await fill(db, 1001, 3000);
    expect(await content(db)).toEqual([{ n: 3000, s: String((3000 * 3001) / 2) }]);
    const [refilled, refilledOnDisk] = await sizes(db, dir, "t");
    expect(refilled).toBe(refilledOnDisk);
    expect(refilled).toBeLessThan(grown);

    // Rewrites: new files for the same tables.
    await db.query("VACUUM FULL t");
    expect(await content(db)).toEqual([{ n: 3000, s: String((3000 * 3001) / 2) }]);
    await db.query("TRUNCATE t");
    await fill(db, 1, 700);
    await db.query("REINDEX TABLE t");
    await fill(db, 701, 900);
    expect(await content(db)).toEqual([{ n: 900, s: String((900 * 901) / 2) }]);
    expect(
      await db.query("SELECT count(*)::int AS n FROM t WHERE pad = repeat(md5($1::text), 12)", [77]),
    ).toEqual([{ n: 1 }]);
    await db.close();

    // Reopened: what was written is what is read.
    const again = await open(dir);
    expect(await content(again)).toEqual([{ n: 900, s: String((900 * 901) / 2) }]);
    const [size, onDisk] = await sizes(again, dir, "t");
    expect(size).toBe(onDisk);
    await again.close();
  });
});
