// Servers as they are read (get, list, their faults and instance actions) and the planner
// statistics of the compute tables. Accepting new servers is server-acceptance.ts.
import { type Database, invalidInput, notFound } from "@stratus/runtime";
import { cols } from "../columns.js";
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

export interface ServerRow extends Record<string, unknown> {
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

export function fromRow(r: ServerRow): ServerRecord {
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
  SELECT ${cols("servers", "s")}, f.code AS fault_code, f.message AS fault_message, f.details AS fault_details,
         f.created_at AS fault_created_at
  FROM servers s
  LEFT JOIN LATERAL (
    SELECT code, message, details, created_at FROM instance_faults
    WHERE server_id = s.id ORDER BY id DESC LIMIT 1
  ) f ON true`;

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
  constructor(private readonly db: Database) {}

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

  async actions(serverId: string): Promise<ActionRecord[]> {
    const rows = await this.db.query<ActionRow>(
      `SELECT ${cols("instance_actions")} FROM instance_actions WHERE server_id = $1 ORDER BY start_time DESC, id DESC`,
      [serverId],
    );
    return rows.map(actionFromRow);
  }

  async action(serverId: string, requestId: string): Promise<ActionRecord> {
    const rows = await this.db.query<ActionRow>(
      `SELECT ${cols("instance_actions")} FROM instance_actions WHERE server_id = $1 AND request_id = $2`,
      [serverId, requestId],
    );
    if (!rows[0]) throw notFound(`Action ${requestId} could not be found.`);
    const action = actionFromRow(rows[0]);
    const events = await this.db.query<EventRow>(
      `SELECT ${cols("instance_action_events")} FROM instance_action_events WHERE action_id = $1 ORDER BY id`,
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

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
export const isUuid = (s: string) => UUID.test(s);
