// The fake virt driver: "spawning" waits the host's spawn delay, honours the injected faults and
// records the instance in the agent's own database, so that a restarted agent still knows what
// runs on each of its hosts.
import { type Database, type Logger, type Row, TurnBatcher } from "@stratus/runtime";
import { sleep } from "../concurrency.js";
import { type InstanceRecord, PowerState, SpawnError, type SpawnRequest, type VirtDriver } from "./driver.js";
import { type FaultInjector, metadataFault } from "./faults.js";

interface InstanceRow extends Row {
  server_id: string;
  host: string;
  attempt: number;
  power_state: number;
  port_ids: string[];
  name: string;
  image_ref: string;
  vcpus: string | number;
  memory_mb: string | number;
  disk_gb: string | number;
  created_at: Date | string;
}

const COLUMNS =
  "server_id, host, attempt, power_state, port_ids, name, image_ref, vcpus, memory_mb, disk_gb, created_at";

function toRecord(r: InstanceRow): InstanceRecord {
  return {
    serverId: r.server_id,
    host: r.host,
    attempt: Number(r.attempt),
    powerState: Number(r.power_state),
    portIds: r.port_ids ?? [],
    name: r.name,
    imageRef: r.image_ref,
    vcpus: Number(r.vcpus),
    memoryMb: Number(r.memory_mb),
    diskGb: Number(r.disk_gb),
    createdAt: new Date(r.created_at),
  };
}

/**
 * Each key's row (same server and host), or undefined. `once`: a row answers only the first of
 * several equal keys (an insert: the others found it there, as a lone insert would have).
 */
function matchRows(
  keys: { serverId: string; host: string }[],
  rows: InstanceRow[],
  once: boolean,
): (InstanceRow | undefined)[] {
  const byKey = new Map(rows.map((r) => [`${r.server_id}@${r.host}`, r]));
  return keys.map((k) => {
    const key = `${k.serverId}@${k.host}`;
    const row = byKey.get(key);
    if (once) byKey.delete(key);
    return row;
  });
}

export class FakeDriver implements VirtDriver {
  readonly hypervisorType = "fake";
  // Statements for the spawns and look-ups of one turn of the event loop (a delivery of build
  // commands brings several at once): one each, not one per call.
  private readonly inserts = new TurnBatcher((reqs: SpawnRequest[]) => this.insertMany(reqs));
  private readonly lookups = new TurnBatcher((keys: { serverId: string; host: string }[]) =>
    this.getMany(keys),
  );

  constructor(
    private readonly db: Database,
    readonly faults: FaultInjector,
    private readonly logger: Logger,
  ) {}

  async spawn(req: SpawnRequest): Promise<InstanceRecord> {
    if (!req.alreadyChecked) {
      const existing = await this.get(req.serverId, req.host);
      if (existing) return existing;
    }
    const delay = this.faults.get(req.host).spawnDelayMs;
    const metadataReason = metadataFault(req.metadata, req.attempt);
    // An injected failure is taken when the spawn starts, so that N concurrent spawns see N.
    const injected = !metadataReason && this.faults.takeFailure(req.host);
    if (delay > 0) await sleep(delay);
    if (metadataReason) throw new SpawnError(metadataReason, true);
    if (injected) throw new SpawnError(`fake driver: injected spawn failure on host ${req.host}`, true);
    const row = await this.inserts.add(req);
    if (row) {
      this.logger.debug({ server: req.serverId, host: req.host, attempt: req.attempt }, "instance spawned");
      return toRecord(row);
    }
    // Already there (spawned concurrently by another call for the same server and host).
    const winner = await this.get(req.serverId, req.host);
    if (!winner) throw new SpawnError("fake driver: instance vanished while spawning", true);
    return winner;
  }

  async destroy(serverId: string, host: string): Promise<boolean> {
    const rows = await this.db.query(
      "DELETE FROM instances WHERE server_id = $1 AND host = $2 RETURNING server_id",
      [serverId, host],
    );
    return rows.length > 0;
  }

  async get(serverId: string, host: string): Promise<InstanceRecord | undefined> {
    const row = await this.lookups.add({ serverId, host });
    return row ? toRecord(row) : undefined;
  }

  /** The spawns of one turn, one statement: each gets its new row, or undefined if it was there. */
  private async insertMany(reqs: SpawnRequest[]): Promise<(InstanceRow | undefined)[]> {
    const rows = await this.db.query<InstanceRow>(
      `INSERT INTO instances (server_id, host, attempt, power_state, port_ids, name, image_ref, vcpus, memory_mb, disk_gb, metadata)
       SELECT * FROM jsonb_to_recordset($1::jsonb) AS w(server_id text, host text, attempt integer,
         power_state integer, port_ids text[], name text, image_ref text, vcpus bigint, memory_mb bigint,
         disk_gb bigint, metadata jsonb)
       ON CONFLICT (server_id, host) DO NOTHING RETURNING ${COLUMNS}`,
      [
        JSON.stringify(
          reqs.map((r) => ({
            server_id: r.serverId,
            host: r.host,
            attempt: r.attempt,
            power_state: PowerState.running,
            port_ids: r.portIds,
            name: r.name,
            image_ref: r.imageRef,
            vcpus: r.vcpus,
            memory_mb: r.memoryMb,
            disk_gb: r.diskGb,
            metadata: r.metadata,
          })),
        ),
      ],
    );
    return matchRows(reqs, rows, true);
  }

  /** The look-ups of one turn, one statement. */
  private async getMany(keys: { serverId: string; host: string }[]): Promise<(InstanceRow | undefined)[]> {
    const rows = await this.db.query<InstanceRow>(
      `SELECT ${COLUMNS} FROM instances
       WHERE (server_id, host) IN (SELECT * FROM unnest($1::text[], $2::text[]))`,
      [keys.map((k) => k.serverId), keys.map((k) => k.host)],
    );
    return matchRows(keys, rows, false);
  }

  async list(filter: { host?: string; serverId?: string } = {}): Promise<InstanceRecord[]> {
    const rows = await this.db.query<InstanceRow>(
      `SELECT ${COLUMNS} FROM instances
       WHERE ($1::text IS NULL OR host = $1) AND ($2::text IS NULL OR server_id = $2)
       ORDER BY host, created_at, server_id`,
      [filter.host || null, filter.serverId || null],
    );
    return rows.map(toRecord);
  }

  async countByHost(): Promise<Map<string, number>> {
    const rows = await this.db.query<{ host: string; n: string | number }>(
      "SELECT host, count(*) AS n FROM instances GROUP BY host",
    );
    return new Map(rows.map((r) => [r.host, Number(r.n)]));
  }
}
