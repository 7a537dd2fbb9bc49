// The same migrations run on embedded PGlite and on the PostgreSQL server; the schema's
// invariants hold on both.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { createLogger } from "../log.js";
import { createTempDatabase, postgresAvailable, type TempDatabase } from "../testing/postgres.js";
import type { Database } from "./database.js";
import { type Migration, splitStatements } from "./migrate.js";
import { openDatabase } from "./open.js";

const logger = createLogger("storage-test", "silent");

const migrations: Migration[] = [
  {
    id: "001_items",
    sql: `-- items with a unique name
CREATE TABLE items (id serial PRIMARY KEY, name text NOT NULL UNIQUE);
CREATE FUNCTION touch() RETURNS trigger AS $$
BEGIN
  NEW.name := lower(NEW.name);
  RETURN NEW;
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER items_lower BEFORE INSERT ON items FOR EACH ROW EXECUTE FUNCTION touch();`,
  },
  { id: "002_counter", sql: "ALTER TABLE items ADD COLUMN counter int NOT NULL DEFAULT 0;" },
];

async function exercise(db: Database) {
  await db.query("INSERT INTO items (name) VALUES ($1)", ["Alpha"]);
  expect(await db.query("SELECT name, counter FROM items")).toEqual([{ name: "alpha", counter: 0 }]);
  await expect(db.query("INSERT INTO items (name) VALUES ($1)", ["ALPHA"])).rejects.toThrow(/unique/i);
  // A failed transaction leaves nothing behind.
  await expect(
    db.transaction(async (tx) => {
      await tx.query("INSERT INTO items (name) VALUES ($1)", ["beta"]);
      throw new Error("boom");
    }),
  ).rejects.toThrow("boom");
  expect(await db.query("SELECT count(*)::int AS n FROM items")).toEqual([{ n: 1 }]);
  const applied = await db.query<{ id: string }>("SELECT id FROM schema_migrations ORDER BY id");
  expect(applied.map((r) => r.id)).toEqual(["001_items", "002_counter"]);
}

describe("storage", () => {
  const cleanups: (() => Promise<void>)[] = [];
  afterAll(async () => {
    for (const c of cleanups.reverse()) await c();
  });

  /**
   * A fresh database on the PostgreSQL server for tests. Skips the test (and says so) where no
   * server answers; under CI (STRATUS_REQUIRE_POSTGRES=1) postgresAvailable fails instead.
   */
  async function serverDatabase(ctx: { skip: () => void }): Promise<TempDatabase> {
    if (!(await postgresAvailable())) {
      console.warn("SKIPPED: no PostgreSQL server answers at the test URL (set STRATUS_TEST_POSTGRES_URL)");
      ctx.skip();
    }
    const temp = await createTempDatabase();
    cleanups.push(() => temp.drop());
    return temp;
  }
  /** A PGlite data directory of its own, removed after the tests. */
  function pgliteDir(): string {
    const dir = mkdtempSync(join(tmpdir(), "stratus-pglite-"));
    cleanups.push(async () => rmSync(dir, { recursive: true, force: true }));
    return dir;
  }
  const openPGlite = (dir: string) => openDatabase({ service: "t", dataDir: dir, migrations, logger });
  const oneConnection = (temp: TempDatabase) =>
    openDatabase({ service: "t", url: temp.url, dataDir: "", migrations, logger, poolSize: 1 });

  it("splits migrations into statements, keeping $$ bodies whole", () => {
    expect(splitStatements(migrations[0]!.sql)).toHaveLength(3);
  });

  it("runs migrations on PGlite, once, and persists across reopen", async () => {
    const dir = pgliteDir();
    const db = await openPGlite(dir);
    expect(db.kind).toBe("pglite");
    await exercise(db);
    await db.close();
    const again = await openPGlite(dir);
    expect(await again.query("SELECT name FROM items")).toEqual([{ name: "alpha" }]);
    await again.close();
  });

  it("runs PGlite statements with parameters prepared: types, nulls, errors, transactions", async () => {
    const dir = pgliteDir();
    const db = await openPGlite(dir);
    const preparedAs = async (statement: string) =>
      (
        await db.query<{ name: string }>("SELECT name FROM pg_prepared_statements WHERE statement = $1", [
          statement,
        ])
      ).map((r) => r.name);
    const insert = "INSERT INTO items (name, counter) VALUES ($1, $2) RETURNING id, name, counter";
    const [a] = await db.query<{ id: number; name: string; counter: number }>(insert, ["One", 1]);
    const [b] = await db.query<{ id: number; name: string; counter: number }>(insert, ["Two", 2]);
    expect([a, b]).toEqual([
      { id: expect.any(Number), name: "one", counter: 1 },
      { id: expect.any(Number), name: "two", counter: 2 },
    ]);
    // One statement, prepared once, under the name PostgreSQL would give it.
    expect(await preparedAs(insert)).toEqual([expect.stringMatching(/^auto_[0-9a-f]{24}$/)]);
    // Arrays, nulls, jsonb and a statement that returns no rows.
    const picked = await db.query<{ name: string; tag: string | null; doc: unknown }>(
      "SELECT name, $2::text AS tag, $3::jsonb AS doc FROM items WHERE name = ANY($1::text[]) ORDER BY name",
      [["one", "two", "nine"], null, JSON.stringify({ k: [1, 2] })],
    );
    expect(picked).toEqual([
      { name: "one", tag: null, doc: { k: [1, 2] } },
      { name: "two", tag: null, doc: { k: [1, 2] } },
    ]);
    expect(await db.query("UPDATE items SET counter = counter + $1 WHERE name = $2", [5, "one"])).toEqual([]);
    // A refused statement carries its SQLSTATE, and the connection goes on.
    await expect(db.query(insert, ["ONE", 9])).rejects.toMatchObject({ code: "23505" });
    await expect(db.query("SELECT nope FROM items WHERE id = $1", [1])).rejects.toThrow(/nope/);
    // In a transaction: prepared statements see the transaction's writes, and a failure rolls
    // back everything it wrote.
    await expect(
      db.transaction(async (tx) => {
        await tx.query(insert, ["three", 3]);
        expect(await tx.query("SELECT count(*)::int AS n FROM items WHERE counter > $1", [0])).toEqual([
          { n: 3 },
        ]);
        await tx.query(insert, ["TWO", 0]);
      }),
    ).rejects.toMatchObject({ code: "23505" });
    expect(await db.query("SELECT name, counter FROM items WHERE counter > $1 ORDER BY name", [0])).toEqual([
      { name: "one", counter: 6 },
      { name: "two", counter: 2 },
    ]);
    await db.close();
  });

  it("gives a PGlite statement that asks for it a generic plan, outside transactions only", async () => {
    const dir = pgliteDir();
    const db = await openPGlite(dir);
    const plans = async (statement: string) =>
      (
        await db.query<{ generic: string; custom: string }>(
          "SELECT generic_plans::text AS generic, custom_plans::text AS custom FROM pg_prepared_statements WHERE statement = $1",
          [statement],
        )
      ).map((r) => [Number(r.generic), Number(r.custom)]);
    const generic = "SELECT count(*)::int AS n FROM items WHERE counter > $1";
    const custom = "SELECT count(*)::int AS n FROM items WHERE counter >= $1";
    for (let i = 0; i < 3; i++) {
      expect(await db.query(generic, [i], { genericPlan: true })).toEqual([{ n: 0 }]);
      expect(await db.query(custom, [i])).toEqual([{ n: 0 }]);
    }
    expect(await plans(generic)).toEqual([[3, 0]]);
    expect(await plans(custom)).toEqual([[0, 3]]);
    // In a transaction the option is ignored, as on PostgreSQL; and the session is left as it was.
    await db.transaction(async (tx) => tx.query(generic, [9], { genericPlan: true }));
    expect(await plans(generic)).toEqual([[3, 1]]);
    // A statement that fails when it runs leaves the session as it was too.
    await expect(db.query("SELECT 1 / $1::int AS x", [0], { genericPlan: true })).rejects.toThrow(
      /division by zero/,
    );
    expect(await db.query("SELECT current_setting('plan_cache_mode') AS mode")).toEqual([{ mode: "auto" }]);
    expect(await db.query(custom, [0])).toEqual([{ n: 0 }]);
    expect(await plans(custom)).toEqual([[0, 4]]);
    await db.close();
  });

  it("runs the same migrations on the PostgreSQL server, concurrently from two processes' worth of pools", async (ctx) => {
    const temp = await serverDatabase(ctx);
    // Two openers race; the advisory lock makes one apply and the other see it applied.
    const [a, b] = await Promise.all([
      openDatabase({ service: "t", url: temp.url, dataDir: "", migrations, logger }),
      openDatabase({ service: "t", url: temp.url, dataDir: "", migrations, logger }),
    ]);
    expect(a.kind).toBe("postgres");
    await exercise(a);
    expect(await b.query("SELECT count(*)::int AS n FROM items")).toEqual([{ n: 1 }]);
    await a.close();
    await b.close();
  });

  it("runs named statements, with a generic plan when asked, on connections of their own", async (ctx) => {
    // Pool size 1: one connection for ordinary statements, one for generic plans.
    const db = await oneConnection(await serverDatabase(ctx));
    await exercise(db); // leaves one item, "alpha"
    const sql = "SELECT name FROM items WHERE name = $1";
    for (const name of ["alpha", "beta"]) {
      expect(await db.query(sql, [name], { name: "items_by_name", genericPlan: true })).toEqual(
        name === "alpha" ? [{ name: "alpha" }] : [],
      );
    }
    // Read on the generic plans' session (a query asking for a generic plan runs there).
    const onGenericSession = <T extends Record<string, unknown>>(q: string, params: unknown[]) =>
      db.query<T>(q, params, { genericPlan: true });
    const [stat] = await onGenericSession<{ generic_plans: string }>(
      "SELECT generic_plans FROM pg_prepared_statements WHERE name = $1",
      ["items_by_name"],
    );
    expect(Number(stat!.generic_plans)).toBe(2);
    expect(await onGenericSession("SELECT current_setting($1) AS mode", ["plan_cache_mode"])).toEqual([
      { mode: "force_generic_plan" },
    ]);
    // Ordinary statements keep the server's choice.
    expect(await db.query("SHOW plan_cache_mode")).toEqual([{ plan_cache_mode: "auto" }]);
    // A failing statement leaves the generic session usable.
    await expect(
      db.query("SELECT 1 / $1::int AS x", [0], { name: "divide", genericPlan: true }),
    ).rejects.toThrow(/division by zero/);
    expect(await db.query(sql, ["alpha"], { name: "items_by_name", genericPlan: true })).toEqual([
      { name: "alpha" },
    ]);
    expect(await db.query(sql, ["alpha"], { name: "items_by_name" })).toEqual([{ name: "alpha" }]);
    await db.close();
  });

  it("prepares statements with parameters under names from their text; jit is off", async (ctx) => {
    const db = await oneConnection(await serverDatabase(ctx));
    const preparedAs = async (statement: string) =>
      (
        await db.query<{ name: string }>("SELECT name FROM pg_prepared_statements WHERE statement = $1", [
          statement,
        ])
      ).map((r) => r.name);
    const sql = "SELECT count(*)::int AS n FROM items WHERE name <> $1";
    await db.query(sql, ["x"]);
    await db.query(sql, ["y"]);
    await db.query("SELECT count(*) FROM items"); // no parameters: never named
    expect(await preparedAs(sql)).toEqual([expect.stringMatching(/^auto_[0-9a-f]{24}$/)]);
    expect(await preparedAs("SELECT count(*) FROM items")).toEqual([]);
    // genericPlan without a name uses the derived one (read on the generic plans' session).
    await db.query(sql, ["z"], { genericPlan: true });
    const [row] = await db.query<{ generic_plans: string }>(
      "SELECT generic_plans FROM pg_prepared_statements WHERE name LIKE 'auto_%' AND statement = $1",
      [sql],
      { genericPlan: true },
    );
    expect(Number(row!.generic_plans)).toBeGreaterThanOrEqual(1);
    expect(await db.query("SHOW jit")).toEqual([{ jit: "off" }]);
    await db.close();
  });
});
