import { randomBytes } from "node:crypto";
import pg from "pg";

export const TEST_POSTGRES_URL =
  process.env.STRATUS_TEST_POSTGRES_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";

export interface TempDatabase {
  readonly url: string;
  drop(): Promise<void>;
}

/**
 * Whether the PostgreSQL server for tests answers. Tests of the server variants skip, and say so,
 * when it does not (a developer machine with only the embedded default). With
 * STRATUS_REQUIRE_POSTGRES=1 (set by .ci/run) a missing server is an error instead, so CI can
 * never pass by skipping them.
 */
export async function postgresAvailable(): Promise<boolean> {
  const up = await postgresAnswers();
  if (!up && process.env.STRATUS_REQUIRE_POSTGRES === "1") {
    throw new Error(`STRATUS_REQUIRE_POSTGRES=1 but no PostgreSQL server answers at ${TEST_POSTGRES_URL}`);
  }
  return up;
}

async function postgresAnswers(): Promise<boolean> {
  const client = new pg.Client({ connectionString: TEST_POSTGRES_URL, connectionTimeoutMillis: 2000 });
  try {
    await client.connect();
    await client.query("SELECT 1");
    return true;
  } catch {
    return false;
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** A fresh, empty database on the test server; drop() removes it. */
export async function createTempDatabase(prefix = "stratus_test"): Promise<TempDatabase> {
  const name = `${prefix}_${randomBytes(6).toString("hex")}`;
  const admin = new pg.Client({ connectionString: TEST_POSTGRES_URL });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  const url = new URL(TEST_POSTGRES_URL);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    async drop() {
      const c = new pg.Client({ connectionString: TEST_POSTGRES_URL });
      await c.connect();
      await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await c.end();
    },
  };
}
