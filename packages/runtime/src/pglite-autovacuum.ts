// PGlite has no autovacuum (it runs no background workers): a service's embedded database would
// keep every dead row version its updates and deletes leave, in the tables and their indexes, for
// as long as the service runs, and every scan would walk them; and its planner would keep the
// statistics of the last ANALYZE someone ran (none: default estimates) however the tables grew.
// This does autovacuum's work on the service's one connection: every `everyMs` it reads each
// table's dead, live and changed row counts, vacuums the tables past autovacuum's own vacuum
// threshold (50 + 20% of the live rows dead) and analyzes those past its analyze threshold
// (50 + 10% of the live rows inserted, updated or deleted since the last ANALYZE), one at a time.
// A service whose tables churn much faster asks for a shorter interval (the scheduler: 1 s).
import type { Database } from "./storage.js";

export interface AutovacuumOptions {
  /** Dead rows a table may hold before it is vacuumed, plus `scale` x its live rows. */
  threshold: number;
  scale: number;
  /** Rows changed since the last ANALYZE before the table is analyzed, plus `analyzeScale` x its live rows. */
  analyzeThreshold: number;
  analyzeScale: number;
}

/** PostgreSQL's autovacuum defaults (autovacuum_vacuum_* and autovacuum_analyze_*). */
const DEFAULTS: AutovacuumOptions = { threshold: 50, scale: 0.2, analyzeThreshold: 50, analyzeScale: 0.1 };

export interface AutovacuumTick {
  vacuumed: string[];
  analyzed: string[];
}

export class PGliteAutovacuum {
  private running = false;

  constructor(
    private readonly db: Pick<Database, "query">,
    private readonly options: AutovacuumOptions = DEFAULTS,
  ) {}

  /** Vacuums and analyzes the tables past their thresholds now; says which. */
  async tick(): Promise<AutovacuumTick> {
    const done: AutovacuumTick = { vacuumed: [], analyzed: [] };
    if (this.running) return done;
    this.running = true;
    try {
      // This session's counts reach the statistics views when flushed: at the end of this call.
      await this.db.query("SELECT pg_stat_force_next_flush()");
      const due = await this.db.query<{ name: string; vacuum: boolean; analyze_due: boolean }>(
        `SELECT name, vacuum, analyze_due FROM (
           SELECT quote_ident(schemaname) || '.' || quote_ident(relname) AS name, n_dead_tup,
             n_dead_tup > $1::float8 + $2::float8 * n_live_tup AS vacuum,
             n_mod_since_analyze > $3::float8 + $4::float8 * n_live_tup AS analyze_due
           FROM pg_stat_user_tables) t
         WHERE vacuum OR analyze_due ORDER BY n_dead_tup DESC, name`,
        [
          this.options.threshold,
          this.options.scale,
          this.options.analyzeThreshold,
          this.options.analyzeScale,
        ],
      );
      for (const t of due) {
        const what = t.vacuum && t.analyze_due ? "VACUUM (ANALYZE)" : t.vacuum ? "VACUUM" : "ANALYZE";
        await this.db.query(`${what} ${t.name}`);
        if (t.vacuum) done.vacuumed.push(t.name);
        if (t.analyze_due) done.analyzed.push(t.name);
      }
      return done;
    } finally {
      this.running = false;
    }
  }

  /** Checks every `everyMs` (errors go to `onError`); returns the stop function. */
  start(everyMs: number, onError: (err: unknown) => void): () => void {
    const timer = setInterval(() => void this.tick().catch(onError), everyMs);
    timer.unref();
    return () => clearInterval(timer);
  }
}
