// The runtime's stand-in for autovacuum: every period it reads each table's counters and runs the
// VACUUM and ANALYZE the statistics policy (statistics.ts) asks for, one table at a time, on the
// service's own connections. openDatabase starts it; close() stops it.
import type { Database } from "./database.js";
import { type StatisticsPolicy, type TableCounters, workFor } from "./statistics.js";

export interface MaintenanceTick {
  vacuumed: string[];
  analyzed: string[];
}

export class TableMaintenance {
  private running = false;

  constructor(
    private readonly db: Pick<Database, "query" | "kind">,
    private readonly policy: StatisticsPolicy,
  ) {}

  /** Vacuums and analyzes the tables the policy asks for now; says which. */
  async tick(): Promise<MaintenanceTick> {
    const done: MaintenanceTick = { vacuumed: [], analyzed: [] };
    if (this.running) return done;
    this.running = true;
    try {
      // PGlite: this session's counts reach the statistics views when flushed, at the end of this
      // call. (On PostgreSQL each connection flushes its own, within a second when busy.)
      if (this.db.kind === "pglite") await this.db.query("SELECT pg_stat_force_next_flush()");
      const tables = await this.db.query<TableCounters & Record<string, unknown>>(
        `SELECT quote_ident(s.schemaname) || '.' || quote_ident(s.relname) AS name,
           s.n_live_tup::float8 AS live, s.n_dead_tup::float8 AS dead,
           s.n_mod_since_analyze::float8 AS changed, c.reltuples::float8 AS planned
         FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid
         ORDER BY s.n_dead_tup DESC, name`,
      );
      for (const t of tables) {
        const work = workFor(t, this.policy);
        if (!work.vacuum && !work.analyze) continue;
        const what = work.vacuum && work.analyze ? "VACUUM (ANALYZE)" : work.vacuum ? "VACUUM" : "ANALYZE";
        await this.db.query(`${what} ${t.name}`);
        if (work.vacuum) done.vacuumed.push(t.name);
        if (work.analyze) done.analyzed.push(t.name);
      }
      return done;
    } finally {
      this.running = false;
    }
  }

  /** Looks now and then every `everyMs` (errors go to `onError`); returns the stop function. */
  start(everyMs: number, onError: (err: unknown) => void): () => void {
    const tick = () => void this.tick().catch(onError);
    tick();
    const timer = setInterval(tick, everyMs);
    timer.unref();
    return () => clearInterval(timer);
  }
}
