// The one policy for when a service's tables are vacuumed and analyzed, on both backends
// (maintenance.ts applies it). Two needs, each with its own rule:
//
// - PGlite runs no background workers, so no autovacuum: its tables would keep every dead row
//   version their updates and deletes leave (and every scan walk them), and its planner the
//   statistics of the last ANALYZE anyone ran. There the policy is autovacuum's own: vacuum a
//   table past autovacuum's vacuum threshold (50 + 20% of its live rows dead), analyze one past
//   its analyze threshold (50 + 10% of its live rows inserted, updated or deleted since its last
//   ANALYZE). On PostgreSQL that is autovacuum's work, left to it: a VACUUM there changes the
//   tables' page counts, after which every pooled connection plans its statements again.
// - A table that grows fast (a cloud registered, servers created by the thousand) must not be
//   planned with the statistics of its almost empty self, on either backend: autovacuum's
//   analyze comes only after its naptime and when a worker is free, and a server may run
//   without it. So a service may ask for an ANALYZE of each table that has grown to `growth`
//   times the rows its statistics assume (and by at least 100 rows). Growth, not changed rows:
//   every ANALYZE that changes a table's statistics makes every pooled connection plan that
//   table's statements again, and the planner scales row counts by a table's current size
//   between ANALYZEs; what it must not keep is an almost empty table's picture. With growth 2
//   (doubling) a table is analyzed a handful of times on its way to any size.
import type { Database } from "./database.js";

/** A table's counters (pg_stat_user_tables and pg_class), what the policy decides on. */
export interface TableCounters {
  /** Schema-qualified and quoted, ready for a statement. */
  name: string;
  /** Live rows (n_live_tup). */
  live: number;
  /** Dead row versions (n_dead_tup). */
  dead: number;
  /** Rows inserted, updated or deleted since the table's last ANALYZE (n_mod_since_analyze). */
  changed: number;
  /** Rows the planner's statistics assume (reltuples, as of the last ANALYZE or VACUUM; -1: never). */
  planned: number;
}

export interface StatisticsPolicy {
  /** Autovacuum's vacuum and analyze rules (where no autovacuum runs: PGlite). */
  autovacuum: boolean;
  /** Analyze a table holding this many times the rows its statistics assume; 0: not for growth. */
  growth: number;
}

export interface TableWork {
  vacuum: boolean;
  analyze: boolean;
}

/** PostgreSQL's autovacuum defaults (autovacuum_vacuum_* and autovacuum_analyze_*). */
export const VACUUM_THRESHOLD = 50;
export const VACUUM_SCALE = 0.2;
export const ANALYZE_THRESHOLD = 50;
export const ANALYZE_SCALE = 0.1;
/** Rows a table must have grown by, besides its growth factor, before growth analyzes it. */
export const GROWTH_MIN_ROWS = 100;

export function statisticsPolicy(backend: Database["kind"], growth: number): StatisticsPolicy {
  return { autovacuum: backend === "pglite", growth };
}

/** Whether the policy has anything to do on this backend at all. */
export function hasWork(policy: StatisticsPolicy): boolean {
  return policy.autovacuum || policy.growth > 0;
}

/** What the policy asks for one table now. */
export function workFor(t: TableCounters, policy: StatisticsPolicy): TableWork {
  const vacuum = policy.autovacuum && t.dead > VACUUM_THRESHOLD + VACUUM_SCALE * t.live;
  const changed = policy.autovacuum && t.changed > ANALYZE_THRESHOLD + ANALYZE_SCALE * t.live;
  const planned = Math.max(t.planned, 0);
  const grown = policy.growth > 0 && t.live >= policy.growth * planned && t.live - planned >= GROWTH_MIN_ROWS;
  return { vacuum, analyze: changed || grown };
}
