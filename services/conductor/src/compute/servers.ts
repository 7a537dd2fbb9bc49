// Servers, build requests, quotas, faults and instance actions in the compute database.
import { randomUUID } from "node:crypto";
import { type Database, invalidInput, notFound, type Queryable, StratusError } from "@stratus/runtime";
import type { FlavorRecord } from "./flavors.js";

export interface ServerAddressRecord {
  networkId: string;
  networkName: string;
  ipAddress: string;
  version: number;
  macAddress: string;
  portId: string;
  type: string;
}

export interface FaultRecord {
  code: number;
  message: string;
  details: string;
  createdAt: Date;
}

export interface ServerRecord {
  id: string;
  name: string;
  projectId: string;
  userId: string;
  flavorId: string;
  flavor: FlavorRecord;
  imageRef: string;
  vmState: string;
  taskState: string;
  powerState: number;
  host: string;
  node: string;
  addresses: ServerAddressRecord[];
  metadata: Record<string, string>;
  reservationId: string;
  launchIndex: number;
  keyName: string;
  availabilityZone: string;
  userData: string;
  hostname: string;
  description: string;
  createdAt: Date;
  updatedAt: Date;
  launchedAt: Date | null;
  terminatedAt: Date | null;
  deleted: boolean;
  fault?: FaultRecord | undefined;
}

interface ServerRow extends Record<string, unknown> {
  id: string;
  name: string;
  project_id: string;
  user_id: string;
  flavor_id: string;
  flavor: FlavorRecord;
  image_ref: string;
  vm_state: string;
  task_state: string;
  power_state: number;
  host: string;
  node: string;
  addresses: ServerAddressRecord[];
  metadata: Record<string, string>;
  reservation_id: string;
  launch_index: number;
  key_name: string;
  availability_zone: string;
  user_data: string;
  hostname: string;
  description: string;
  created_at: Date;
  updated_at: Date;
  launched_at: Date | null;
  terminated_at: Date | null;
  deleted: boolean;
  fault_code: number | null;
  fault_message: string | null;
  fault_details: string | null;
  fault_created_at: Date | null;
}

function fromRow(r: ServerRow): ServerRecord {
  return {
    id: r.id,
    name: r.name,
    projectId: r.project_id,
    userId: r.user_id,
    flavorId: r.flavor_id,
    flavor: r.flavor,
    imageRef: r.image_ref,
    vmState: r.vm_state,
    taskState: r.task_state,
    powerState: r.power_state,
    host: r.host,
    node: r.node,
    addresses: r.addresses ?? [],
    metadata: r.metadata ?? {},
    reservationId: r.reservation_id,
    launchIndex: r.launch_index,
    keyName: r.key_name,
    availabilityZone: r.availability_zone,
    userData: r.user_data,
    hostname: r.hostname,
    description: r.description,
    createdAt: new Date(r.created_at),
    updatedAt: new Date(r.updated_at),
    launchedAt: r.launched_at ? new Date(r.launched_at) : null,
    terminatedAt: r.terminated_at ? new Date(r.terminated_at) : null,
    deleted: r.deleted,
    fault:
      r.fault_code !== null && r.fault_code !== undefined
        ? {
            code: r.fault_code,
            message: r.fault_message ?? "",
            details: r.fault_details ?? "",
            createdAt: new Date(r.fault_created_at ?? r.updated_at),
          }
        : undefined,
  };
}

/** Nova's API status from vm_state (and task_state). */
export function statusOf(s: { vmState: string; deleted: boolean }): string {
  if (s.deleted) return "DELETED";
  switch (s.vmState) {
    case "building":
      return "BUILD";
    case "active":
      return "ACTIVE";
    case "error":
      return "ERROR";
    case "stopped":
      return "SHUTOFF";
    case "deleted":
      return "DELETED";
    default:
      return "UNKNOWN";
  }
}

const STATUS_TO_VM_STATE: Record<string, string> = {
  BUILD: "building",
  ACTIVE: "active",
  ERROR: "error",
  SHUTOFF: "stopped",
  DELETED: "deleted",
};

const SELECT_SERVER = `
  SELECT s.*, f.code AS fault_code, f.message AS fault_message, f.details AS fault_details,
         f.created_at AS fault_created_at
  FROM servers s
  LEFT JOIN LATERAL (
    SELECT code, message, details, created_at FROM instance_faults
    WHERE server_id = s.id ORDER BY id DESC LIMIT 1
  ) f ON true`;

const INSERT_BUILD = `
  WITH br AS (
    INSERT INTO build_requests (id, reservation_id, project_id, user_id, client_token, request_id, request)
    VALUES ($1, $2, $3, $4, $5, $6, $7)
  ), s AS (
    INSERT INTO servers (id, build_request_id, name, project_id, user_id, flavor_id, flavor, image_ref,
      vm_state, task_state, metadata, reservation_id, launch_index, key_name, availability_zone,
      user_data, hostname, description)
    SELECT x.id, $1, x.name, $3, $4, $8, $9, $10, 'building', 'scheduling', $11, $2, x.n - 1, $12, $13,
      $14, x.hostname, $15
    FROM unnest($16::uuid[], $17::text[], $18::text[]) WITH ORDINALITY AS x(id, name, hostname, n)
    RETURNING *
  ), b AS (
    INSERT INTO server_builds (server_id, phase, network_mode, requested, max_attempts, request_id,
      lease_owner, lease_until, generation)
    SELECT id, 'allocating', $19, $20, $21, $6, $22, now() + ($23 || ' milliseconds')::interval,
      CASE WHEN $22 = '' THEN 0 ELSE 1 END FROM s
  ), a AS (
    INSERT INTO instance_actions (server_id, action, request_id, user_id, project_id)
    SELECT id, 'create', $6, $4, $3 FROM s
  )
  SELECT s.*, NULL::integer AS fault_code, NULL::text AS fault_message, NULL::text AS fault_details,
    NULL::timestamptz AS fault_created_at
  FROM s ORDER BY s.launch_index`;

/** The most create requests of one project accepted in one transaction. */
const MAX_CREATE_BATCH = 64;

export interface CreateResult {
  reservationId: string;
  servers: ServerRecord[];
  /** false: the client token named an earlier request, whose servers these are. */
  created: boolean;
}

interface PendingCreate {
  req: NewServersRequest;
  resolve: (r: CreateResult) => void;
  reject: (err: unknown) => void;
}

/** What one request of a batch came to: its new rows, an earlier reservation, or a refusal. */
interface CreateOutcome {
  reservationId: string;
  rows?: ServerRow[];
  error?: StratusError;
}

export interface Limits {
  instances: number;
  cores: number;
  ram: number;
}

export interface RequestedNetwork {
  networkId: string;
  portId: string;
  fixedIp: string;
  tag: string;
}

export interface NewServersRequest {
  name: string;
  flavor: FlavorRecord;
  imageRef: string;
  minCount: number;
  maxCount: number;
  networkMode: "list" | "auto" | "none";
  networks: RequestedNetwork[];
  metadata: Record<string, string>;
  userData: string;
  clientToken: string;
  projectId: string;
  userId: string;
  keyName: string;
  availabilityZone: string;
  description: string;
  hostname: string;
  requestId: string;
  maxAttempts: number;
  /**
   * The builds start leased to this owner for `leaseMs` (generation 1), so that the replica that
   * accepted them can run them without taking the lease first; without it, unleased.
   */
  lease?: { owner: string; leaseMs: number };
}

export interface ListFilter {
  projectId?: string | undefined;
  name?: string;
  status?: string;
  host?: string;
  flavorId?: string;
  imageRef?: string;
  changesSince?: Date | undefined;
  limit?: number;
  marker?: string;
  includeDeleted?: boolean;
  reservationId?: string;
}

export class Servers {
  constructor(
    private readonly db: Database,
    private readonly defaults: Limits,
  ) {}

  async get(id: string, opts: { projectId?: string | undefined; includeDeleted?: boolean } = {}) {
    if (!isUuid(id)) throw notFound(`Instance ${id} could not be found.`);
    const rows = await this.db.query<ServerRow>(`${SELECT_SERVER} WHERE s.id = $1`, [id]);
    const r = rows[0];
    if (!r || (opts.projectId && r.project_id !== opts.projectId) || (r.deleted && !opts.includeDeleted)) {
      throw notFound(`Instance ${id} could not be found.`);
    }
    return fromRow(r);
  }

  async list(f: ListFilter): Promise<ServerRecord[]> {
    const where: string[] = [];
    const params: unknown[] = [];
    const p = (v: unknown) => {
      params.push(v);
      return `$${params.length}`;
    };
    if (f.projectId) where.push(`s.project_id = ${p(f.projectId)}`);
    // Nova lists deleted servers when asked, or with changes-since.
    if (!f.includeDeleted && !f.changesSince) where.push("NOT s.deleted");
    if (f.name) where.push(`strpos(lower(s.name), lower(${p(f.name)})) > 0`);
    if (f.status) {
      const status = f.status.toUpperCase();
      if (status === "DELETED") where.push("s.deleted");
      else {
        const vm = STATUS_TO_VM_STATE[status];
        if (!vm) return [];
        where.push(`s.vm_state = ${p(vm)} AND NOT s.deleted`);
      }
    }
    if (f.host) where.push(`s.host = ${p(f.host)}`);
    if (f.flavorId) where.push(`s.flavor_id = ${p(f.flavorId)}`);
    if (f.imageRef) where.push(`s.image_ref = ${p(f.imageRef)}`);
    if (f.changesSince) where.push(`s.updated_at >= ${p(f.changesSince)}`);
    if (f.reservationId) where.push(`s.reservation_id = ${p(f.reservationId)}`);
    if (f.marker) {
      const m = isUuid(f.marker)
        ? await this.db.query<{ created_at: Date; id: string }>(
            "SELECT created_at, id FROM servers WHERE id = $1",
            [f.marker],
          )
        : [];
      if (!m[0]) throw invalidInput(`marker [${f.marker}] not found`);
      where.push(`(s.created_at, s.id) < (${p(m[0].created_at)}, ${p(m[0].id)})`);
    }
    const limit = f.limit && f.limit > 0 ? Math.min(f.limit, 1000) : 1000;
    const rows = await this.db.query<ServerRow>(
      `${SELECT_SERVER} ${where.length ? `WHERE ${where.join(" AND ")}` : ""}
       ORDER BY s.created_at DESC, s.id DESC LIMIT ${limit}`,
      params,
    );
    return rows.map(fromRow);
  }

  limitsOf(projectId: string): Promise<Limits> {
    return this.limits(this.db, projectId);
  }

  usageOf(projectId: string): Promise<Limits> {
    return this.usage(this.db, projectId);
  }

  async limits(q: Queryable, projectId: string): Promise<Limits> {
    const rows = await q.query<{ resource: string; hard_limit: number }>(
      "SELECT resource, hard_limit FROM quotas WHERE project_id = $1",
      [projectId],
    );
    const l = { ...this.defaults };
    for (const r of rows) if (r.resource in l) l[r.resource as keyof Limits] = r.hard_limit;
    return l;
  }

  /** Live servers of the project and what they hold (kept by triggers, migration 003). */
  async usage(q: Queryable, projectId: string): Promise<Limits> {
    const rows = await q.query<{ instances: string; cores: string; ram: string }>(
      "SELECT instances, cores, ram FROM project_usage WHERE project_id = $1",
      [projectId],
    );
    const r = rows[0];
    return { instances: Number(r?.instances ?? 0), cores: Number(r?.cores ?? 0), ram: Number(r?.ram ?? 0) };
  }

  /**
   * Accepts a build request: checks quota under a per-project lock, writes the build request, the
   * servers, their build state and the create action in one transaction, and answers once it is
   * committed. The same client token returns what the first call created.
   *
   * Group commit: while a project's transaction runs, that project's next requests wait and are
   * then accepted together in one transaction (one lock, one quota read, one commit), each checked
   * against the usage left by those before it, exactly as if they had run one after another.
   */
  create(req: NewServersRequest): Promise<CreateResult> {
    return new Promise((resolve, reject) => {
      const queue = this.waiting.get(req.projectId);
      if (queue) queue.push({ req, resolve, reject });
      else this.waiting.set(req.projectId, [{ req, resolve, reject }]);
      if (!this.accepting.has(req.projectId)) void this.drain(req.projectId);
    });
  }

  /** Requests waiting for their project's next transaction, and projects with one running. */
  private readonly waiting = new Map<string, PendingCreate[]>();
  private readonly accepting = new Set<string>();

  private async drain(projectId: string): Promise<void> {
    this.accepting.add(projectId);
    try {
      for (;;) {
        const queue = this.waiting.get(projectId);
        if (!queue?.length) {
          this.waiting.delete(projectId);
          return;
        }
        await this.acceptBatch(queue.splice(0, MAX_CREATE_BATCH));
      }
    } finally {
      this.accepting.delete(projectId);
    }
  }

  private async acceptBatch(batch: PendingCreate[]): Promise<void> {
    let outcomes: CreateOutcome[];
    try {
      outcomes = await this.db.transaction((tx) =>
        this.acceptAll(
          tx,
          batch.map((b) => b.req),
        ),
      );
    } catch (err) {
      if (batch.length === 1) {
        batch[0]!.reject(err);
        return;
      }
      // A statement failed and took the others' transaction with it: accept each on its own.
      for (const b of batch) await this.acceptBatch([b]);
      return;
    }
    // Committed: answer every caller.
    for (let i = 0; i < batch.length; i++) {
      const o = outcomes[i]!;
      const { resolve, reject } = batch[i]!;
      if (o.error) reject(o.error);
      else if (o.rows)
        resolve({ reservationId: o.reservationId, servers: o.rows.map(fromRow), created: true });
      else
        this.list({ reservationId: o.reservationId, includeDeleted: true }).then((servers) => {
          servers.sort((a, b) => a.launchIndex - b.launchIndex);
          resolve({ reservationId: o.reservationId, servers, created: false });
        }, reject);
    }
  }

  /** One project's requests, in order, inside one transaction (safe to run again on a retry). */
  private async acceptAll(tx: Queryable, reqs: NewServersRequest[]): Promise<CreateOutcome[]> {
    const projectId = reqs[0]!.projectId;
    await tx.query("SELECT pg_advisory_xact_lock(hashtext($1))", [`quota:${projectId}`]);
    const tokens = [...new Set(reqs.map((r) => r.clientToken).filter(Boolean))];
    const known = new Map<string, string>();
    if (tokens.length) {
      const rows = await tx.query<{ client_token: string; reservation_id: string }>(
        "SELECT client_token, reservation_id FROM build_requests WHERE project_id = $1 AND client_token = ANY($2::text[])",
        [projectId, tokens],
      );
      for (const r of rows) known.set(r.client_token, r.reservation_id);
    }
    const limits = await this.limits(tx, projectId);
    const used = await this.usage(tx, projectId);
    const outcomes: CreateOutcome[] = [];
    for (const req of reqs) {
      const again = req.clientToken ? known.get(req.clientToken) : undefined;
      if (again) {
        outcomes.push({ reservationId: again });
        continue;
      }
      const fits = (n: number) =>
        used.instances + n <= limits.instances &&
        used.cores + n * req.flavor.vcpus <= limits.cores &&
        used.ram + n * req.flavor.ramMb <= limits.ram;
      let count = req.maxCount;
      while (count >= req.minCount && !fits(count)) count--;
      if (count < req.minCount) {
        const over: string[] = [];
        if (used.instances + req.minCount > limits.instances) over.push("instances");
        if (used.cores + req.minCount * req.flavor.vcpus > limits.cores) over.push("cores");
        if (used.ram + req.minCount * req.flavor.ramMb > limits.ram) over.push("ram");
        outcomes.push({
          reservationId: "",
          error: new StratusError(
            "quota_exceeded",
            `Quota exceeded for ${over.join(", ")}: Requested ${req.minCount}, but already used ${used.instances} of ${limits.instances} instances, ${used.cores} of ${limits.cores} cores, ${used.ram} of ${limits.ram} ram`,
          ),
        });
        continue;
      }
      const rows = await this.insertBuild(tx, req, count);
      used.instances += count;
      used.cores += count * req.flavor.vcpus;
      used.ram += count * req.flavor.ramMb;
      if (req.clientToken) known.set(req.clientToken, rows[0]!.reservation_id);
      outcomes.push({ reservationId: rows[0]!.reservation_id, rows });
    }
    return outcomes;
  }

  private insertBuild(tx: Queryable, req: NewServersRequest, count: number): Promise<ServerRow[]> {
    const buildRequestId = randomUUID();
    const reservationId = `r-${randomUUID().slice(0, 8)}`;
    const ids: string[] = [];
    const names: string[] = [];
    const hostnames: string[] = [];
    for (let i = 0; i < count; i++) {
      const name = count > 1 ? `${req.name}-${i + 1}` : req.name;
      ids.push(randomUUID());
      names.push(name);
      hostnames.push(req.hostname || name.replace(/[^A-Za-z0-9-]/g, "-").slice(0, 63));
    }
    // One statement: the build request, its servers, their build state and create actions.
    return tx.query<ServerRow>(INSERT_BUILD, [
      buildRequestId,
      reservationId,
      req.projectId,
      req.userId,
      req.clientToken,
      req.requestId,
      JSON.stringify({ ...req, flavor: req.flavor.id, userData: undefined, lease: undefined }),
      req.flavor.id,
      JSON.stringify(req.flavor),
      req.imageRef,
      JSON.stringify(req.metadata),
      req.keyName,
      req.availabilityZone,
      req.userData,
      req.description,
      ids,
      names,
      hostnames,
      req.networkMode,
      JSON.stringify(req.networks),
      req.maxAttempts,
      req.lease?.owner ?? "",
      String(req.lease?.leaseMs ?? 0),
    ]);
  }

  async actions(serverId: string): Promise<ActionRecord[]> {
    const rows = await this.db.query<ActionRow>(
      "SELECT * FROM instance_actions WHERE server_id = $1 ORDER BY start_time DESC, id DESC",
      [serverId],
    );
    return rows.map(actionFromRow);
  }

  async action(serverId: string, requestId: string): Promise<ActionRecord> {
    const rows = await this.db.query<ActionRow>(
      "SELECT * FROM instance_actions WHERE server_id = $1 AND request_id = $2",
      [serverId, requestId],
    );
    if (!rows[0]) throw notFound(`Action ${requestId} could not be found.`);
    const action = actionFromRow(rows[0]);
    const events = await this.db.query<EventRow>(
      "SELECT * FROM instance_action_events WHERE action_id = $1 ORDER BY id",
      [rows[0].id],
    );
    action.events = events.map((e) => ({
      event: e.event,
      startTime: new Date(e.start_time),
      finishTime: e.finish_time ? new Date(e.finish_time) : null,
      result: e.result,
      traceback: e.traceback,
      host: e.host,
    }));
    return action;
  }
}

export interface ActionEventRecord {
  event: string;
  startTime: Date;
  finishTime: Date | null;
  result: string;
  traceback: string;
  host: string;
}

export interface ActionRecord {
  action: string;
  instanceUuid: string;
  requestId: string;
  userId: string;
  projectId: string;
  startTime: Date;
  message: string;
  updatedAt: Date;
  events: ActionEventRecord[];
}

interface ActionRow extends Record<string, unknown> {
  id: string;
  server_id: string;
  action: string;
  request_id: string;
  user_id: string;
  project_id: string;
  start_time: Date;
  message: string;
  updated_at: Date;
}

interface EventRow extends Record<string, unknown> {
  event: string;
  start_time: Date;
  finish_time: Date | null;
  result: string;
  traceback: string;
  host: string;
}

function actionFromRow(r: ActionRow): ActionRecord {
  return {
    action: r.action,
    instanceUuid: r.server_id,
    requestId: r.request_id,
    userId: r.user_id,
    projectId: r.project_id,
    startTime: new Date(r.start_time),
    message: r.message,
    updatedAt: new Date(r.updated_at),
    events: [],
  };
}

/** Records one finished step of an action (Nova's instance action events). */
export async function recordEvent(
  q: Queryable,
  e: {
    serverId: string;
    requestId: string;
    event: string;
    startedAt: Date;
    ok: boolean;
    host?: string;
    traceback?: string;
  },
): Promise<void> {
  await q.query(
    `WITH a AS (
       UPDATE instance_actions SET updated_at = now(),
         message = CASE WHEN $4 THEN message ELSE 'Error' END
       WHERE server_id = $1 AND request_id = $2 RETURNING id)
     INSERT INTO instance_action_events (action_id, event, start_time, finish_time, result, traceback, host)
     SELECT id, $3, $5, now(), CASE WHEN $4 THEN 'Success' ELSE 'Error' END, $6, $7 FROM a`,
    [e.serverId, e.requestId, e.event, e.ok, e.startedAt, e.traceback ?? "", e.host ?? ""],
  );
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
export const isUuid = (s: string) => UUID.test(s);
