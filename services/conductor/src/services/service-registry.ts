// os-services: which compute services exist and whether they are up, from their heartbeats.
import { randomUUID } from "node:crypto";
import type { Queryable } from "@stratus/runtime";

export interface Heartbeat {
  binary: string;
  host: string;
  zone: string;
  disabled: boolean;
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
  last_seen_at: Date;
}

export class ServiceRegistry {
  constructor(
    private readonly db: Queryable,
    /** A service is down when its last heartbeat is older than this (Nova's service_down_time). */
    private readonly downAfterMs: number,
    private readonly now: () => Date = () => new Date(),
  ) {}

  async recordHeartbeat(hb: Heartbeat): Promise<void> {
    await this.db.query(
      `INSERT INTO compute_services (id, binary_name, host, zone, disabled, last_seen_at)
       VALUES ($1, $2, $3, $4, $5, $6)
       ON CONFLICT (binary_name, host) DO UPDATE
         SET last_seen_at = GREATEST(compute_services.last_seen_at, EXCLUDED.last_seen_at),
             zone = EXCLUDED.zone`,
      [randomUUID(), hb.binary, hb.host, hb.zone || "nova", hb.disabled, hb.at],
    );
  }

  async list(filter: { binary?: string; host?: string } = {}): Promise<ServiceRecord[]> {
    const rows = await this.db.query<Row>(
      `SELECT * FROM compute_services
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
      state: !r.forced_down && now - new Date(r.last_seen_at).getTime() <= this.downAfterMs ? "up" : "down",
      updatedAt: new Date(r.last_seen_at),
      forcedDown: r.forced_down,
      disabledReason: r.disabled_reason,
    }));
  }
}
