// Migrations: a service's NNN_name.sql files, applied in name order at start, each once, in one
// transaction serialised across processes by an advisory lock. One set serves both backends.
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import type { Logger } from "../log.js";
import type { Database } from "./database.js";

export interface Migration {
  id: string;
  sql: string;
}

/** Reads NNN_name.sql files from a directory, in name order. */
export function migrationsFrom(dir: string): Migration[] {
  return readdirSync(dir)
    .filter((f) => f.endsWith(".sql"))
    .sort()
    .map((f) => ({ id: f.replace(/\.sql$/, ""), sql: readFileSync(join(dir, f), "utf8") }));
}

const MIGRATION_LOCK = 746_117_001;

export async function migrate(db: Database, migrations: Migration[], logger: Logger): Promise<string[]> {
  return db.transaction(async (tx) => {
    await tx.query("SELECT pg_advisory_xact_lock($1)", [MIGRATION_LOCK]);
    await tx.query(
      "CREATE TABLE IF NOT EXISTS schema_migrations (id text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())",
    );
    const done = new Set(
      (await tx.query<{ id: string }>("SELECT id FROM schema_migrations")).map((r) => r.id),
    );
    const applied: string[] = [];
    for (const m of migrations) {
      if (done.has(m.id)) continue;
      for (const statement of splitStatements(m.sql)) await tx.query(statement);
      await tx.query("INSERT INTO schema_migrations (id) VALUES ($1)", [m.id]);
      applied.push(m.id);
    }
    if (applied.length) logger.info({ applied, backend: db.kind }, "migrations applied");
    return applied;
  });
}

/**
 * Splits a migration into statements on semicolons at line ends, keeping $$-quoted bodies whole,
 * so both drivers run them one by one inside the migration's transaction.
 */
export function splitStatements(sql: string): string[] {
  const out: string[] = [];
  let current = "";
  let inDollar = false;
  for (const line of sql.split("\n")) {
    if (line.trim().startsWith("--") && !inDollar) continue;
    current += `${line}\n`;
    if ((line.match(/\$\$/g)?.length ?? 0) % 2 === 1) inDollar = !inDollar;
    if (!inDollar && line.trimEnd().endsWith(";")) {
      out.push(current.trim());
      current = "";
    }
  }
  if (current.trim()) out.push(current.trim());
  return out;
}
