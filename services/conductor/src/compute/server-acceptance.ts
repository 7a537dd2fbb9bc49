// Accepting servers (CreateServers): the quota check under a per-project lock, then the build
// request, its servers, their build rows (leased to the replica that accepted them) and create
// actions in one statement, committed before the caller is answered. The same client token
// answers what the first call created.
import { randomUUID } from "node:crypto";
import { type Database, type Queryable, StratusError } from "@stratus/runtime";
import { cols } from "../columns.js";
import type { FlavorRecord } from "./flavors.js";
import type { Quotas } from "./quotas.js";
import { fromRow, type ServerRecord, type ServerRow, type Servers } from "./servers.js";

export interface RequestedNetwork {
  networkId: string;
  portId: string;
  fixedIp: string;
  tag: string;
}

/** The user a build's steps act for (the accepting call's principal). */
export interface BuildCaller {
  userId: string;
  projectId: string;
  roles: readonly string[];
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
  /** The user who asked; absent when a service asked as itself (its steps then act as the conductor). */
  caller?: BuildCaller | undefined;
  /**
   * The builds start leased to this owner for `leaseMs` (generation 1), so that the replica that
   * accepted them can run them without taking the lease first; without it, unleased.
   */
  lease?: { owner: string; leaseMs: number };
}

export interface CreateResult {
  reservationId: string;
  servers: ServerRecord[];
  /** false: the client token named an earlier request, whose servers these are. */
  created: boolean;
}

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
    RETURNING ${cols("servers")}
  ), b AS (
    INSERT INTO server_builds (server_id, phase, network_mode, requested, max_attempts, request_id,
      lease_owner, lease_until, generation, caller_user_id, caller_project_id, caller_roles)
    SELECT id, 'allocating', $19, $20, $21, $6, $22, now() + ($23 || ' milliseconds')::interval,
      CASE WHEN $22 = '' THEN 0 ELSE 1 END, $24, $25, $26::text[] FROM s
  ), a AS (
    INSERT INTO instance_actions (server_id, action, request_id, user_id, project_id)
    SELECT id, 'create', $6, $4, $3 FROM s
  )
  SELECT s.*, NULL::integer AS fault_code, NULL::text AS fault_message, NULL::text AS fault_details,
    NULL::timestamptz AS fault_created_at
  FROM s ORDER BY s.launch_index`;

/** The most create requests of one project accepted in one transaction. */
const MAX_CREATE_BATCH = 64;

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

export class ServerAcceptance {
  /** Requests waiting for their project's next transaction, and projects with one running. */
  private readonly waiting = new Map<string, PendingCreate[]>();
  private readonly accepting = new Set<string>();

  constructor(
    private readonly db: Database,
    private readonly quotas: Quotas,
    /** Answers a repeated client token, and counts the servers created (planner statistics). */
    private readonly servers: Servers,
  ) {}

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
        this.servers.list({ reservationId: o.reservationId, includeDeleted: true }).then((servers) => {
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
    const limits = await this.quotas.limits(tx, projectId);
    const used = await this.quotas.usage(tx, projectId);
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
      JSON.stringify({
        ...req,
        flavor: req.flavor.id,
        userData: undefined,
        lease: undefined,
        caller: undefined,
      }),
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
      req.caller?.userId ?? "",
      req.caller?.projectId ?? "",
      req.caller ? [...req.caller.roles] : null,
    ]);
  }
}
