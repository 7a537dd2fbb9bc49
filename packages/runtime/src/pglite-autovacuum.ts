// PGlite has no autovacuum (it runs no background workers): a service's embedded database would
// keep every dead row version its updates and deletes leave, in the tables and their indexes, for
// as long as the service runs, and every scan would walk them. This does autovacuum's work on the
// service's one connection: every `everyMs` it reads each table's dead and live row counts and
// vacuums the tables past autovacuum's own threshold (50 + 20% of the live rows), one at a time.
// A service whose tables churn much faster asks for a shorter interval (the scheduler: 1 s).
import type { Database } from "./storage.js";

export interface AutovacuumOptions {
  /** Dead rows a table may hold before it is vacuumed, plus `scale` x its live rows. */
  threshold: number;
  scale: number;
}

const DEFAULTS: AutovacuumOptions = { threshold: 50, scale: 0.2 };

export class PGliteAutovacuum {
  private running = false;

  constructor(
    private readonly db: Pick<Database, "query">,
    private readonly options: AutovacuumOptions = DEFAULTS,
  ) {}

  /** Vacuums the tables past the threshold now; returns their names. */
  async tick(): Promise<string[]> {
    if (this.running) return [];
    this.running = true;
    try {
      // This session's counts reach the statistics views when flushed: at the end of this call.
      await this.db.query("SELECT pg_stat_force_next_flush()");
      const due = await this.db.query<{ name: string }>(
        `SELECT quote_ident(schemaname) || '.' || quote_ident(relname) AS name FROM pg_stat_user_tables
         WHERE n_dead_tup > $1::float8 + $2::float8 * n_live_tup ORDER BY n_dead_tup DESC`,
        [this.options.threshold, this.options.scale],
      );
      for (const t of due) await this.db.query(`VACUUM ${t.name}`);
      return due.map((t) => t.name);
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
