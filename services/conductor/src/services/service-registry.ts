// os-services: which compute services exist and whether they are up, from their heartbeats.
import { randomUUID } from "node:crypto";
import type { Queryable } from "@stratus/runtime";

export interface Heartbeat {
  binary: string;
  host: string;
  zone: string;
  disabled: boolean;
  /** The host's agent stopped cleanly: down until its next heartbeat. */
  stopped?: boolean;
  at: Date;
}

export interface ServiceRecord {
  id: string;
  binary: string;
  host: string;
  zone: string;
  status: "enabled" | "disabled";
  state: "up" | "down";
  updatedAt: Date;
  forcedDown: boolean;
  disabledReason: string;
}

interface Row extends Record<string, unknown> {
  id: string;
  binary_name: string;
  host: string;
  zone: string;
  disabled: boolean;
  disabled_reason: string;
  forced_down: boolean;
  stopped: boolean;
  last_seen_at: Date;
}

const COLUMNS = "id, binary_name, host, zone, disabled, disabled_reason, forced_down, stopped, last_seen_at";

export class ServiceRegistry {
  /** Heartbeats not yet written, the latest per (binary, host). */
  private readonly pending = new Map<string, Heartbeat>();
  private timer: NodeJS.Timeout | undefined;
  private writing: Promise<void> = Promise.resolve();
  private unschedulable: { at: number; hosts: Promise<string[]> } | undefined;

  constructor(
    private readonly db: Queryable,
    /** A service is down when its last heartbeat is older than this (Nova's service_down_time). */
    private readonly downAfterMs: number,
    private readonly now: () => Date = () => new Date(),
    /**
     * Heartbeats are written together at most this often, so that their statements do not grow
     * with the number of hosts (docs/performance.md). Far below service_down_time; list() writes
     * what is pending first.
     */
    private readonly flushMs = 1000,
    private readonly onError: (err: unknown) => void = () => {},
  ) {}

  /** Takes a heartbeat; it is written with the others of the next flush (within flushMs). */
  async recordHeartbeat(hb: Heartbeat): Promise<void> {
    const key = `${hb.binary}\n${hb.host}`;
    const seen = this.pending.get(key);
    if (!seen || seen.at <= hb.at) this.pending.set(key, hb);
    this.scheduleFlush();
    // A host that left is unschedulable from its next write on, not after the cache's life.
    if (hb.stopped) this.unschedulable = undefined;
  }

  private scheduleFlush(): void {
    this.timer ??= setTimeout(() => {
      this.timer = undefined;
      this.flush().catch(this.onError);
    }, this.flushMs);
  }

  /** Writes the pending heartbeats in one statement (in key order: replicas never deadlock). */
  flush(): Promise<void> {
    const run = this.writing.then(async () => {
      if (!this.pending.size) return;
      const batch = [...this.pending.entries()].sort(([a], [b]) => (a < b ? -1 : 1)).map(([, hb]) => hb);
      this.pending.clear();
      try {
        await this.db.query(
          `INSERT INTO compute_services (id, binary_name, host, zone, disabled, stopped, last_seen_at)
           SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::boolean[], $6::boolean[],
             $7::timestamptz[])
           ON CONFLICT (binary_name, host) DO UPDATE
             SET last_seen_at = GREATEST(compute_services.last_seen_at, EXCLUDED.last_seen_at),
                 stopped = CASE WHEN EXCLUDED.last_seen_at >= compute_services.last_seen_at
                           THEN EXCLUDED.stopped ELSE compute_services.stopped END,
                 zone = EXCLUDED.zone`,
          [
            batch.map(() => randomUUID()),
            batch.map((hb) => hb.binary),
            batch.map((hb) => hb.host),
            batch.map((hb) => hb.zone || "nova"),
            batch.map((hb) => hb.disabled),
            batch.map((hb) => hb.stopped ?? false),
            batch.map((hb) => hb.at),
          ],
        );
      } catch (err) {
        // Keep them for the next flush unless a newer heartbeat came meanwhile.
        for (const hb of batch) {
          const key = `${hb.binary}\n${hb.host}`;
          if (!this.pending.has(key)) this.pending.set(key, hb);
        }
        this.scheduleFlush();
        throw err;
      }
    });
    this.writing = run.catch(() => {});
    return run;
  }

  /** Stops the timer and writes what is pending. */
  async close(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    await this.flush();
  }

  async list(filter: { binary?: string; host?: string } = {}): Promise<ServiceRecord[]> {
    await this.flush();
    const rows = await this.db.query<Row>(
      `SELECT ${COLUMNS} FROM compute_services
       WHERE ($1 = '' OR binary_name = $1) AND ($2 = '' OR host = $2)
       ORDER BY host, binary_name`,
      [filter.binary ?? "", filter.host ?? ""],
    );
    const now = this.now().getTime();
    return rows.map((r) => ({
      id: r.id,
      binary: r.binary_name,
      host: r.host,
      zone: r.zone,
      status: r.disabled ? "disabled" : "enabled",
      state: this.isUp(r, now) ? "up" : "down",
      updatedAt: new Date(r.last_seen_at),
      forcedDown: r.forced_down,
      disabledReason: r.disabled_reason,
    }));
  }

  /** The one rule of up and down (Nova's servicegroup is_up, plus a clean stop). */
  private isUp(r: Pick<Row, "forced_down" | "stopped" | "last_seen_at">, now: number): boolean {
    return !r.forced_down && !r.stopped && now - new Date(r.last_seen_at).getTime() <= this.downAfterMs;
  }

  /**
   * The compute hosts the scheduler must not choose: down (isUp) or disabled, as Nova's
   * ComputeFilter. A host never heard of is not among them (placement alone knows it). Read at
   * most once per `cacheMs` (every build asks), after writing the heartbeats pending.
   */
  unschedulableHosts(cacheMs = 1000): Promise<string[]> {
    const at = this.now().getTime();
    if (this.unschedulable && at - this.unschedulable.at < cacheMs) return this.unschedulable.hosts;
    const hosts = (async () => {
      await this.flush();
      const rows = await this.db.query<
        Pick<Row, "host" | "disabled" | "forced_down" | "stopped" | "last_seen_at">
      >(
        `SELECT host, disabled, forced_down, stopped, last_seen_at FROM compute_services
         WHERE binary_name = 'nova-compute'
           AND (disabled OR forced_down OR stopped OR last_seen_at < $1)`,
        [new Date(at - this.downAfterMs)],
      );
      return rows
        .filter((r) => r.disabled || !this.isUp(r, at))
        .map((r) => r.host)
        .sort();
    })();
    this.unschedulable = { at, hosts };
    hosts.catch(() => {
      if (this.unschedulable?.hosts === hosts) this.unschedulable = undefined;
    });
    return hosts;
  }
}
