// On a PostgreSQL server: a prepared statement whose table another replica altered runs once
// more (SQLSTATE 0A000 "cached plan must not change result type"), and a server with no
// connection left (53300), a pool with none free in time and a server that cannot be reached are
// `unavailable` (503 / RPC Unavailable), never an internal error.
import pg from "pg";
import { afterAll, describe, expect, it } from "vitest";
import { isStratusError } from "../errors.js";
import { createLogger } from "../log.js";
import { freePort } from "../testing/nats-server.js";
import { createTempDatabase, postgresAvailable, type TempDatabase } from "../testing/postgres.js";
import type { Database } from "./database.js";
import type { Migration } from "./migrate.js";
import { openDatabase } from "./open.js";

const logger = createLogger("storage-test", "silent");
const migrations: Migration[] = [
  { id: "001_items", sql: "CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL);" },
];

const cleanups: (() => Promise<void>)[] = [];
afterAll(async () => {
  for (const c of cleanups.reverse()) await c();
});

/**
 * A fresh PostgreSQL database, or the test skipped (and saying so) on a machine with no server.
 * Never skipped in CI: there postgresAvailable() throws instead (STRATUS_REQUIRE_POSTGRES=1).
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

async function open(url: string, extra: { poolSize?: number; poolWaitMs?: number } = {}): Promise<Database> {
  const db = await openDatabase({
    service: "t",
    url,
    dataDir: "",
    migrations,
    logger,
    statisticsMs: 0,
    ...extra,
  });
  cleanups.push(() => db.close());
  return db;
}

async function admin(url: string): Promise<pg.Client> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  cleanups.push(() => c.end());
  return c;
}

const unavailable = (err: unknown) => isStratusError(err, "unavailable");

describe("a table altered under a running statement cache", () => {
  // The statement a replica of the previous version would run: its result is the table's row.
  const read = "SELECT * FROM items WHERE id >= $1 ORDER BY id";

  it("fails a connection that prepared the statement before (the premise)", async (ctx) => {
    const temp = await serverDatabase(ctx);
    await open(temp.url);
    const c = await admin(temp.url);
    await c.query("INSERT INTO items (id, name) VALUES (1, 'a')");
    await c.query({ name: "read", text: read, values: [0] });
    await (await admin(temp.url)).query("ALTER TABLE items ADD COLUMN extra int NOT NULL DEFAULT 7");
    await expect(c.query({ name: "read", text: read, values: [0] })).rejects.toMatchObject({ code: "0A000" });
  });

  it("runs the statement once more, on its own and in a transaction", async (ctx) => {
    const temp = await serverDatabase(ctx);
    // One connection: the statement is prepared on the very connection that runs it next.
    const db = await open(temp.url, { poolSize: 1 });
    await db.query("INSERT INTO items (id, name) VALUES ($1, $2)", [1, "a"]);
    expect(await db.query(read, [0])).toEqual([{ id: 1, name: "a" }]);
    expect(await db.transaction((tx) => tx.query(read, [0]))).toEqual([{ id: 1, name: "a" }]);
    const other = await admin(temp.url);
    await other.query("ALTER TABLE items ADD COLUMN extra int NOT NULL DEFAULT 7");
    expect(await db.query(read, [0])).toEqual([{ id: 1, name: "a", extra: 7 }]);

    await other.query("ALTER TABLE items ADD COLUMN more text NOT NULL DEFAULT 'm'");
    const inTx = await db.transaction(async (tx) => {
      await tx.query("UPDATE items SET name = $2 WHERE id = $1", [1, "b"]);
      return tx.query(read, [0]);
    });
    expect(inTx).toEqual([{ id: 1, name: "b", extra: 7, more: "m" }]);
    // The transaction ran whole once: the update was not lost nor doubled.
    expect(await db.query("SELECT name FROM items WHERE id = $1", [1])).toEqual([{ name: "b" }]);
  });
});

describe("a database that cannot take the statement is unavailable", () => {
  it("a server with no connection left for the service (too many clients, 53300)", async (ctx) => {
    const temp = await serverDatabase(ctx);
    await open(temp.url);
    const role = `stratus_limited_${process.pid}`;
    const su = await admin(temp.url);
    await su.query(`DROP ROLE IF EXISTS ${role}`);
    await su.query(`CREATE ROLE ${role} LOGIN CONNECTION LIMIT 1`);
    await su.query(`GRANT ALL ON items TO ${role}`);
    cleanups.push(async () => {
      const c = new pg.Client({ connectionString: temp.url });
      await c.connect();
      await c.query(`DROP OWNED BY ${role}`).catch(() => undefined);
      await c.query(`DROP ROLE IF EXISTS ${role}`).catch(() => undefined);
      await c.end();
    });
    const url = new URL(temp.url);
    url.username = role;
    // The role's one connection is taken: every other one is refused with 53300.
    await admin(url.toString());
    const probe = new pg.Client({ connectionString: url.toString() });
    await expect(probe.connect()).rejects.toMatchObject({ code: "53300" });
    const db = await openDatabase({
      service: "t",
      url: url.toString(),
      dataDir: "",
      migrations: [],
      logger,
      statisticsMs: 0,
    })
      .then((d) => {
        cleanups.push(() => d.close());
        return d;
      })
      .catch((err: unknown) => err);
    // Opening (the migrations' first statement) already needs a connection.
    expect(unavailable(db)).toBe(true);
  });

  it("a pool with no connection free in time", async (ctx) => {
    const temp = await serverDatabase(ctx);
    const db = await open(temp.url, { poolSize: 1, poolWaitMs: 200 });
    let release!: () => void;
    const held = db.transaction(
      () =>
        new Promise<void>((r) => {
          release = r;
        }),
    );
    await new Promise((r) => setTimeout(r, 50));
    const started = Date.now();
    const err = await db.query("SELECT 1 AS one").catch((e: unknown) => e);
    expect(unavailable(err)).toBe(true);
    expect(Date.now() - started).toBeGreaterThanOrEqual(150);
    release();
    await held;
    expect(await db.query("SELECT 1 AS one")).toEqual([{ one: 1 }]);
  });

  it("a server that cannot be reached", async () => {
    const url = `postgres://postgres@127.0.0.1:${await freePort()}/none`;
    const err = await openDatabase({
      service: "t",
      url,
      dataDir: "",
      migrations,
      logger,
      statisticsMs: 0,
    }).catch((e: unknown) => e);
    expect(unavailable(err)).toBe(true);
  });
});
