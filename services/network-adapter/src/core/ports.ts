// Ports: creation with immediate / deferred / no allocation, claims, binding (deferred ports get
// their address from the bound host's segment), unbinding, and the compute agent's check.
import { randomBytes, randomUUID } from "node:crypto";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { PortChange, PortChangedSchema } from "@stratus/contracts/events/v1";
import {
  type CreatePortRequest,
  type FixedIp,
  IpAllocation,
  type ListPortsRequest,
  type PortDetailsSchema,
  type UpdatePortRequest,
} from "@stratus/contracts/network/v1";
import {
  conflict,
  currentContext,
  invalidInput,
  notFound,
  type Queryable,
  StratusError,
  Subjects,
  TurnBatcher,
} from "@stratus/runtime";
import { contains, parseCidr, parseIp } from "../ipam/ipv4.js";
import { type Caller, type Outbox, owningProject, type Tx } from "./context.js";
import {
  allocatedEvent,
  allocateFromAny,
  allocateSpecific,
  releasePortIps,
  type SubnetRow,
  subnetRows,
} from "./ipam.js";
import {
  IP_ALLOCATION_NAMES,
  jsonColumn,
  loadPorts,
  type PortRec,
  portFromRow,
  type SegmentRec,
  segmentOut,
} from "./model.js";
import {
  checkId,
  getNetwork,
  getNetworkBrief,
  isUuid,
  networkVisibleSql,
  routedNetworkSql,
} from "./networks.js";

const MAC = /^([0-9a-f]{2}:){5}[0-9a-f]{2}$/i;
const VIF_TYPE = "ovs";
const VIF_DETAILS = { port_filter: "true", connectivity: "l2", bridge_name: "br-int" };

function randomMac(): string {
  const b = randomBytes(3);
  return `fa:16:3e:${[...b].map((x) => x.toString(16).padStart(2, "0")).join(":")}`;
}

function portVisibleSql(tx: Tx, param: number): { sql: string; params: unknown[] } {
  if (tx.caller.isAdmin) return { sql: "true", params: [] };
  return { sql: `p.project_id = $${param}`, params: [tx.caller.projectId] };
}

export async function getPort(tx: Tx, id: string, opts: { forUpdate?: boolean } = {}): Promise<PortRec> {
  const pid = checkId(id, "Port");
  if (opts.forUpdate) await tx.q.query("SELECT 1 FROM ports WHERE id = $1 FOR UPDATE", [pid]);
  const vis = portVisibleSql(tx, 2);
  const [port] = await loadPorts(tx.q, `p.id = $1 AND ${vis.sql}`, [pid, ...vis.params]);
  if (!port) throw notFound(`Port ${id} could not be found`);
  return port;
}

export async function listPorts(tx: Tx, req: ListPortsRequest): Promise<PortRec[]> {
  const vis = portVisibleSql(tx, 1);
  const params: unknown[] = [...vis.params];
  const where = [vis.sql];
  const add = (sql: (n: number) => string, v: unknown) => {
    params.push(v);
    where.push(sql(params.length));
  };
  if (req.ids.length)
    add(
      (n) => `p.id::text = ANY($${n}::text[])`,
      req.ids.map((i) => i.toLowerCase()),
    );
  if (req.networkId) add((n) => `p.network_id::text = $${n}`, req.networkId.toLowerCase());
  if (req.deviceId) add((n) => `p.device_id = $${n}`, req.deviceId);
  if (req.projectId) add((n) => `p.project_id = $${n}`, req.projectId);
  if (req.bindingHostId) add((n) => `p.binding_host_id = $${n}`, req.bindingHostId);
  if (req.deviceOwner) add((n) => `p.device_owner = $${n}`, req.deviceOwner);
  return loadPorts(tx.q, where.join(" AND "), params);
}

function portEvent(tx: Pick<Tx, "out">, change: PortChange, port: PortRec): void {
  const subject = {
    [PortChange.CREATED]: Subjects.portCreated,
    [PortChange.BOUND]: Subjects.portBound,
    [PortChange.UNBOUND]: Subjects.portUnbound,
    [PortChange.DELETED]: Subjects.portDeleted,
    [PortChange.UPDATED]: Subjects.portUpdated,
    [PortChange.UNSPECIFIED]: Subjects.portUpdated,
  }[change];
  tx.out.add(subject, PortChangedSchema, {
    change,
    portId: port.id,
    networkId: port.networkId,
    projectId: port.projectId,
    deviceId: port.deviceId,
    host: port.bindingHostId,
    ipAddresses: port.fixedIps.map((f) => f.ipAddress),
    status: port.status ?? "",
  });
}

/** Segments whose placement reserved count depends on this port's addresses (network:* owners). */
async function noteReservedChange(tx: Tx, owner: string, subnetIds: string[]): Promise<void> {
  if (!owner.startsWith("network:") || !subnetIds.length) return;
  const rows = await tx.q.query<{ segment_id: string }>(
    "SELECT DISTINCT segment_id FROM subnets WHERE id = ANY($1::uuid[]) AND segment_id IS NOT NULL",
    [subnetIds],
  );
  for (const r of rows) tx.out.segments.add(r.segment_id);
}

/** Allocates explicitly requested fixed IPs; all must be on one segment of a routed network. */
async function allocateFixedIps(
  tx: Tx,
  net: { id: string },
  portId: string,
  fixedIps: FixedIp[],
  opts: { allowGateway?: boolean } = {},
): Promise<{ subnetId: string; ip: number }[]> {
  const subnets = await subnetRows(tx, "network_id = $1", [net.id]);
  const used: SubnetRow[] = [];
  const got: { subnetId: string; ip: number }[] = [];
  for (const f of fixedIps) {
    let sub: SubnetRow | undefined;
    if (f.subnetId) {
      sub = subnets.find((s) => s.id === f.subnetId.toLowerCase());
      if (!sub) throw invalidInput(`Subnet ${f.subnetId} is not a subnet of network ${net.id}`);
    }
    if (f.ipAddress) {
      const ip = parseIp(f.ipAddress);
      sub ??= subnets.find((s) => contains(parseCidr(s.cidr), ip));
      if (!sub) throw invalidInput(`IP address ${f.ipAddress} is not a valid IP for network ${net.id}`);
      await allocateSpecific(tx, sub, ip, portId, opts);
      got.push({ subnetId: sub.id, ip });
    } else if (sub) {
      got.push({ subnetId: sub.id, ip: (await allocateFromAny(tx, [sub], portId, net.id)).ip });
    } else {
      throw invalidInput("each fixed_ips entry needs a subnet_id or an ip_address");
    }
    used.push(sub);
  }
  const segments = new Set(used.map((s) => s.segment_id ?? ""));
  if (segments.size > 1) {
    throw invalidInput("Cannot allocate addresses from different segments.");
  }
  return got;
}

export interface CreatePortOptions {
  /** Router ports may hold a subnet's gateway address. */
  allowGateway?: boolean;
}

export async function createPort(
  tx: Tx,
  req: CreatePortRequest,
  opts: CreatePortOptions = {},
): Promise<PortRec> {
  const net = await getNetworkBrief(tx, req.networkId);
  const project = owningProject(req.projectId, tx.caller);
  if (!tx.caller.isAdmin && net.projectId !== project && !net.shared) {
    throw new StratusError("forbidden", `Network ${net.id} is neither project ${project}'s nor shared`);
  }
  let mode = req.ipAllocation;
  if (mode === IpAllocation.UNSPECIFIED) {
    mode = net.routed && !req.fixedIps.length ? IpAllocation.DEFERRED : IpAllocation.IMMEDIATE;
  }
  if (mode !== IpAllocation.IMMEDIATE && req.fixedIps.length) {
    throw invalidInput(`fixed_ips cannot be given with ip_allocation ${IP_ALLOCATION_NAMES[mode]}`);
  }
  if (mode === IpAllocation.IMMEDIATE && net.routed && !req.fixedIps.length) {
    throw invalidInput(
      `Network ${net.id} is a routed network: a port on it gets its address when bound to a host (deferred) unless fixed_ips name one`,
    );
  }
  if (req.macAddress && !MAC.test(req.macAddress))
    throw invalidInput(`'${req.macAddress}' is not a valid MAC address`);
  const id = randomUUID();
  let inserted: Record<string, unknown> | undefined;
  for (let attempt = 0; attempt < 8 && !inserted; attempt++) {
    const mac = (req.macAddress || randomMac()).toLowerCase();
    const rows = await tx.q.query(
      `INSERT INTO ports (id, network_id, project_id, name, mac_address, device_id, device_owner, ip_allocation, binding_vnic_type)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (network_id, mac_address) DO NOTHING RETURNING *`,
      [
        id,
        net.id,
        project,
        req.name,
        mac,
        req.deviceId,
        req.deviceOwner,
        IP_ALLOCATION_NAMES[mode],
        req.bindingVnicType || "normal",
      ],
    );
    inserted = rows[0];
    if (!inserted && req.macAddress) {
      throw conflict(
        `Unable to complete operation for network ${net.id}. The mac address ${req.macAddress} is in use.`,
      );
    }
  }
  if (!inserted) throw new StratusError("unavailable", "could not generate a unique MAC address; try again");
  let ips: { subnetId: string; ip: number }[] = [];
  if (req.fixedIps.length) {
    ips = await allocateFixedIps(tx, net, id, req.fixedIps, opts);
  } else if (mode === IpAllocation.IMMEDIATE) {
    if (net.subnets.length) {
      const got = await allocateFromAny(tx, net.subnets, id, net.id);
      ips = [{ subnetId: got.subnet.id, ip: got.ip }];
    }
  }
  const port = portFromRow(inserted, ips);
  await noteReservedChange(
    tx,
    port.deviceOwner,
    port.fixedIps.map((f) => f.subnetId),
  );
  portEvent(tx, PortChange.CREATED, port);
  return port;
}

// CreatePort's common case: create_ports_auto (migrations/002) for one or several requests.
const CREATE_PORTS_FAST = `
  SELECT (r.port).*, r.subnet_id AS held_subnet_id, r.ip AS held_ip, r.segment_id AS held_segment_id
  FROM create_ports_auto($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
                         $8::text[], $9::boolean[], $10::text[]) r`;

/** Errors after which the requests are run again, one by one or on the full path. */
function fallBackOn(err: unknown): boolean {
  const e = err as { code?: string; constraint?: string };
  if (e?.code === "23505") return e.constraint === "ports_network_id_mac_address_key";
  return e?.code === "23503" || e?.code === "40001" || e?.code === "40P01";
}

/** A CreatePort the one-statement path may make: automatic address, nothing asked explicitly. */
export function fastEligible(req: CreatePortRequest, caller: Caller): boolean {
  return (
    !req.fixedIps.length &&
    (req.ipAllocation === IpAllocation.UNSPECIFIED || req.ipAllocation === IpAllocation.IMMEDIATE) &&
    (!req.macAddress || MAC.test(req.macAddress)) &&
    isUuid(req.networkId) &&
    (!req.projectId || caller.isAdmin || req.projectId === caller.projectId)
  );
}

type Row = Record<string, unknown>;

/**
 * Makes the ports of eligible requests in ONE autocommitted call of create_ports_auto: one round
 * trip and one commit for all of them. Gives, per request, its new row, or null when that request
 * made nothing (unknown or forbidden network, routed network, no subnet, every free address
 * locked by allocations in flight, the free lists empty): the full path in a transaction then
 * waits for in-flight allocations, reports exhaustion or explains the refusal. A request without
 * a MAC gets one the function draws (and draws again while it is taken: migrations/005). An error
 * in any item (a MAC the caller asked for already on the network, a concurrent network delete)
 * rolls back the whole call; the requests are then run one by one, and one failing so is also left
 * to the full path.
 */
export async function createPortsFast(
  q: Queryable,
  items: { req: CreatePortRequest; caller: Caller }[],
): Promise<(Row | null)[]> {
  const ids = items.map(() => randomUUID());
  // No MAC asked for: null, the function picks a free one.
  const cols = newPortColumns(items, ids, (req) => (req.macAddress ? req.macAddress.toLowerCase() : null));
  let rows: Row[];
  try {
    rows = await q.query(CREATE_PORTS_FAST, cols);
  } catch (err) {
    if (!fallBackOn(err)) throw err;
    if (items.length === 1) return [null];
    return Promise.all(items.map(async (item) => (await createPortsFast(q, [item]))[0]!));
  }
  return rowsById(ids, rows);
}

/**
 * How the adapter's per-turn statements are cut: at most 4 in flight, up to 16 calls each, a
 * statement that fails run again call by call (aloneOnError). Batches of 16 rather than
 * everything waiting: a few statements in flight keep the callers, this process and the database
 * working at the same time instead of in lockstep.
 */
const PORT_BATCHES = { inFlight: 4, maxBatch: 16, aloneOnError: true } as const;

/** Rows of values as the columns of an unnest(): one array per position. */
function columns(rows: unknown[][], width: number): unknown[][] {
  const cols = Array.from({ length: width }, () => [] as unknown[]);
  for (const row of rows) for (const [i, v] of row.entries()) cols[i]!.push(v);
  return cols;
}

/** Each id's row of a RETURNING, in the order of the ids; null for an id that got none. */
function rowsById(ids: string[], rows: Row[]): (Row | null)[] {
  const byId = new Map(rows.map((r) => [String(r.id), r]));
  return ids.map((id) => byId.get(id) ?? null);
}

/**
 * The columns of new ports' requests, in the order create_ports_auto and CREATE_DEFERRED_SQL
 * take them: network, id, project, name, MAC, device id and owner, vnic type, and the caller.
 */
function newPortColumns(
  items: { req: CreatePortRequest; caller: Caller }[],
  ids: string[],
  mac: (req: CreatePortRequest) => string | null,
): unknown[][] {
  return columns(
    items.map(({ req, caller }, i) => [
      req.networkId.toLowerCase(),
      ids[i],
      req.projectId || caller.projectId,
      req.name,
      mac(req),
      req.deviceId,
      req.deviceOwner,
      req.bindingVnicType || "normal",
      caller.isAdmin,
      caller.projectId,
    ]),
    10,
  );
}

/**
 * The port of a row that took one address in its statement (held_subnet_id, held_ip,
 * held_segment_id), with its events in out: the address allocated, then `change`.
 */
function portWithHeldAddress(
  row: Row,
  out: Outbox,
  change: PortChange,
): { port: PortRec; segmentId: string | null } {
  const subnetId = String(row.held_subnet_id);
  const segmentId = row.held_segment_id === null ? null : String(row.held_segment_id);
  const ip = Number(row.held_ip);
  const port = portFromRow(row, [{ subnetId, ip }]);
  allocatedEvent(out, port.id, subnetId, segmentId, ip);
  if (change === PortChange.CREATED && port.deviceOwner.startsWith("network:") && segmentId) {
    out.segments.add(segmentId);
  }
  portEvent({ out }, change, port);
  return { port, segmentId };
}

/** The port of a row of createPortsFast, with its events (ip allocated, port created) in out. */
export function fastPortCreated(row: Row, out: Outbox): PortRec {
  return portWithHeldAddress(row, out, PortChange.CREATED).port;
}

/**
 * Ports on routed networks without fixed IPs, several in one autocommitted statement: such a
 * port is created with deferred allocation (no address until it is bound), so it is one INSERT
 * once its network is known to be visible to its caller and routed (more than one segment, or a
 * subnet on a segment: as getNetworkBrief decides). A request without a row: the full path runs
 * and answers (not found, forbidden, not routed any more, a MAC taken).
 */
const CREATE_DEFERRED_SQL = `WITH r AS (
    SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
      $8::text[], $9::boolean[], $10::text[])
      AS r(network_id, id, project_id, name, mac, device_id, device_owner, vnic, is_admin, caller_project)),
  routed AS (SELECT n.id FROM networks n WHERE n.id IN (SELECT network_id FROM r) AND ${routedNetworkSql("n.id")})
  INSERT INTO ports (id, network_id, project_id, name, mac_address, device_id, device_owner, ip_allocation, binding_vnic_type)
  SELECT r.id, n.id, r.project_id, r.name, r.mac, r.device_id, r.device_owner, 'deferred', r.vnic
  FROM r JOIN networks n ON n.id = r.network_id
  WHERE (r.is_admin OR n.project_id = r.caller_project OR n.shared) AND n.id IN (SELECT id FROM routed)
  ON CONFLICT (network_id, mac_address) DO NOTHING RETURNING *`;

/** A CreatePort the deferred one-statement path may make: automatic, no address asked for. */
export function deferredEligible(req: CreatePortRequest, caller: Caller): boolean {
  return (
    !req.fixedIps.length &&
    (req.ipAllocation === IpAllocation.UNSPECIFIED || req.ipAllocation === IpAllocation.DEFERRED) &&
    !req.macAddress &&
    isUuid(req.networkId) &&
    (!req.projectId || caller.isAdmin || req.projectId === caller.projectId)
  );
}

async function createDeferredPorts(
  q: Queryable,
  items: { req: CreatePortRequest; caller: Caller }[],
): Promise<(Row | null)[]> {
  const ids = items.map(() => randomUUID());
  const cols = newPortColumns(items, ids, () => randomMac());
  return rowsById(ids, await q.query(CREATE_DEFERRED_SQL, cols, { name: "net_create_deferred_ports" }));
}

/** The deferred ports asked for in one turn, made in one statement (createDeferredPorts). */
export class DeferredPortBatcher {
  private readonly batcher: TurnBatcher<{ req: CreatePortRequest; caller: Caller }, Row | null>;

  constructor(q: Queryable) {
    this.batcher = new TurnBatcher((items) => createDeferredPorts(q, items), PORT_BATCHES);
  }

  /** The new port (its event in out), or undefined when the full path must handle the request. */
  async create(req: CreatePortRequest, caller: Caller, out: Outbox): Promise<PortRec | undefined> {
    const row = await this.batcher.add({ req, caller });
    if (!row) return undefined;
    const port = portFromRow(row, []);
    portEvent({ out }, PortChange.CREATED, port);
    return port;
  }
}

/**
 * Groups the eligible CreatePorts that arrive together: the requests of one turn of the event
 * loop, and those arriving while earlier ones are with the database, go in one call of
 * createPortsFast (PORT_BATCHES; a lone request goes alone, one turn later). Group commit for
 * port creation: fewer round trips, commits and statement runs per port when many callers create
 * ports at once; on PGlite, whose queries run on this thread, it is what lets requests queue up
 * at all. createPortsFast retries a failed call item by item itself (only on the errors it knows).
 */
export class PortCreationBatcher {
  private readonly batcher: TurnBatcher<{ req: CreatePortRequest; caller: Caller }, Row | null>;

  constructor(q: Queryable) {
    this.batcher = new TurnBatcher((items) => createPortsFast(q, items), {
      inFlight: PORT_BATCHES.inFlight,
      maxBatch: PORT_BATCHES.maxBatch,
    });
  }

  /** The new port's row, or null when the full path must handle the request. */
  create(req: CreatePortRequest, caller: Caller): Promise<Row | null> {
    return this.batcher.add({ req, caller });
  }
}

export async function updatePort(tx: Tx, req: UpdatePortRequest): Promise<PortRec> {
  const port = await getPort(tx, req.id, { forUpdate: true });
  await tx.q.query(
    `UPDATE ports SET name = COALESCE($2, name), device_id = COALESCE($3, device_id),
       device_owner = COALESCE($4, device_owner), updated_at = now() WHERE id = $1`,
    [port.id, req.name ?? null, req.deviceId ?? null, req.deviceOwner ?? null],
  );
  if (req.updateFixedIps) {
    if (port.bindingHostId) {
      throw conflict(
        `Port ${port.id} is bound to host ${port.bindingHostId}: unbind it before changing its addresses`,
      );
    }
    if (port.ipAllocation === IpAllocation.NONE && req.fixedIps.length) {
      throw invalidInput(`Port ${port.id} was created without IP allocation`);
    }
    const released = await releasePortIps(tx, port.id);
    if (req.fixedIps.length) {
      const net = await getNetwork(tx, port.networkId);
      await allocateFixedIps(tx, net, port.id, req.fixedIps);
    }
    const after = await getPort(tx, port.id);
    await noteReservedChange(tx, after.deviceOwner, [
      ...released.map((r) => r.subnetId),
      ...after.fixedIps.map((f) => f.subnetId),
    ]);
  }
  const updated = await getPort(tx, port.id);
  if (updated.deviceOwner !== port.deviceOwner) {
    await noteReservedChange(
      tx,
      "network:",
      updated.fixedIps.map((f) => f.subnetId),
    );
  }
  portEvent(tx, PortChange.UPDATED, updated);
  return updated;
}

export async function deletePort(tx: Tx, id: string, opts: { internal?: boolean } = {}): Promise<PortRec> {
  const port = await getPort(tx, id, { forUpdate: true });
  if (!opts.internal && port.deviceOwner.startsWith("network:router_")) {
    throw conflict(
      `Port ${port.id} cannot be deleted directly via the port API: has device owner ${port.deviceOwner}.`,
    );
  }
  const released = await releasePortIps(tx, port.id);
  await tx.q.query("DELETE FROM ports WHERE id = $1", [port.id]);
  await noteReservedChange(
    tx,
    port.deviceOwner,
    released.map((r) => r.subnetId),
  );
  portEvent(tx, PortChange.DELETED, port);
  return port;
}

export async function claimPort(
  tx: Tx,
  req: { portId: string; deviceId: string; deviceOwner: string; projectId: string },
): Promise<PortRec> {
  if (!req.deviceId) throw invalidInput("device_id is required to claim a port");
  const port = await getPort(tx, req.portId, { forUpdate: true });
  // The project named in the request is the server's: its port must be that project's, unless an
  // admin user (not merely an internal caller without identity) is asking.
  const ctx = currentContext();
  const adminUser = Boolean(ctx?.isAdmin && ctx.userId);
  if (req.projectId && port.projectId !== req.projectId && !adminUser) {
    throw new StratusError("forbidden", `Port ${port.id} belongs to another project`);
  }
  if (port.deviceId && port.deviceId !== req.deviceId) {
    throw new StratusError("port_in_use", `Port ${port.id} is still in use by device ${port.deviceId}.`);
  }
  await tx.q.query("UPDATE ports SET device_id = $2, device_owner = $3, updated_at = now() WHERE id = $1", [
    port.id,
    req.deviceId,
    req.deviceOwner || port.deviceOwner || "compute:nova",
  ]);
  const claimed = await getPort(tx, port.id);
  portEvent(tx, PortChange.UPDATED, claimed);
  return claimed;
}

function reaches(seg: SegmentRec, physnets: string[]): boolean {
  return !seg.physicalNetwork || physnets.includes(seg.physicalNetwork);
}

/**
 * What binding needs, read in one statement that also locks the port: the port and its addresses,
 * whether its network is visible to the caller, the network's segments and subnets, and the
 * host's physical networks.
 */
async function bindContext(tx: Tx, portId: string, host: string) {
  const pid = checkId(portId, "Port");
  const pvis = portVisibleSql(tx, 3);
  const nvis = networkVisibleSql(tx, "n", 3 + pvis.params.length);
  const [row] = await tx.q.query(
    `SELECT p.*,
       (SELECT coalesce(json_agg(json_build_object('subnetId', a.subnet_id, 'ip', a.ip)), '[]'::json)
          FROM ip_allocations a WHERE a.port_id = p.id) AS bind_ips,
       EXISTS (SELECT 1 FROM networks n WHERE n.id = p.network_id AND ${nvis.sql}) AS bind_network_visible,
       (SELECT coalesce(json_agg(s ORDER BY s.created_at, s.id), '[]'::json)
          FROM segments s WHERE s.network_id = p.network_id) AS bind_segments,
       (SELECT coalesce(json_agg(json_build_object('id', sn.id, 'network_id', sn.network_id,
                 'segment_id', sn.segment_id, 'cidr', sn.cidr, 'gateway_ip', sn.gateway_ip)
               ORDER BY sn.created_at, sn.id), '[]'::json)
          FROM subnets sn WHERE sn.network_id = p.network_id) AS bind_subnets,
       (SELECT h.physical_networks FROM hosts h WHERE h.host = $2) AS bind_physnets
     FROM ports p WHERE p.id = $1 AND ${pvis.sql}
     FOR UPDATE OF p`,
    [pid, host, ...pvis.params, ...nvis.params],
  );
  if (!row) throw notFound(`Port ${portId} could not be found`);
  if (!row.bind_network_visible) throw notFound(`Network ${String(row.network_id)} could not be found`);
  const ips = jsonColumn<{ subnetId: string; ip: string | number }[]>(row.bind_ips).map((i) => ({
    subnetId: i.subnetId,
    ip: Number(i.ip),
  }));
  const segments = jsonColumn<Record<string, unknown>[]>(row.bind_segments).map(segmentOut);
  const subnets = jsonColumn<SubnetRow[]>(row.bind_subnets);
  return {
    row,
    port: portFromRow(row, ips),
    ips,
    segments,
    subnets,
    routed: segments.length > 1 || subnets.some((sn) => sn.segment_id),
    physnets: (row.bind_physnets as string[] | null) ?? [],
  };
}

/**
 * The common bind, several ports in one autocommitted statement: a deferred port holding no
 * address, on a routed network, bound to a host that reaches one of its segments with a subnet.
 * As bindPort does it, port by port: the port (visible to its caller, on a visible network) is
 * locked, the first such segment in creation order is its target, an address is taken from the
 * first of that segment's subnets with one free (free-list rows locked, SKIP LOCKED; the ports
 * aiming at one segment get its first free addresses, one each, in request order), held for the
 * port, and the port is bound. A request without a row: any other case, or not enough free
 * addresses of its segment unlocked; bindPort then answers in a transaction (it waits for those,
 * reports exhaustion, explains a refusal).
 */
const BIND_DEFERRED_SQL = `WITH r AS (
    SELECT * FROM unnest($1::int[], $2::uuid[], $3::text[], $4::text[], $5::boolean[], $6::text[])
      AS r(k, port_id, host, profile, is_admin, caller_project)),
  p AS MATERIALIZED (
    SELECT r.k, p.id, p.network_id, r.host, r.profile FROM r JOIN ports p ON p.id = r.port_id
    WHERE (r.is_admin OR p.project_id = r.caller_project) AND p.ip_allocation = 'deferred'
      AND NOT EXISTS (SELECT 1 FROM ip_allocations a WHERE a.port_id = p.id)
      AND EXISTS (SELECT 1 FROM networks n WHERE n.id = p.network_id
        AND (r.is_admin OR n.project_id = r.caller_project OR n.shared OR n.router_external))
    ORDER BY p.id FOR UPDATE OF p),
  target AS MATERIALIZED (
    SELECT p.k, (SELECT s.id FROM segments s
        WHERE s.network_id = p.network_id
          AND (s.physical_network = ''
            OR s.physical_network = ANY(coalesce((SELECT h.physical_networks FROM hosts h WHERE h.host = p.host), '{}')))
          AND EXISTS (SELECT 1 FROM subnets sn WHERE sn.segment_id = s.id)
        ORDER BY s.created_at, s.id LIMIT 1) AS segment_id
    FROM p WHERE ${routedNetworkSql("p.network_id")}),
  need AS (SELECT segment_id, count(*) AS c FROM target WHERE segment_id IS NOT NULL GROUP BY segment_id),
  picks AS MATERIALIZED (
    SELECT need.segment_id, f.subnet_id, f.ip,
      row_number() OVER (PARTITION BY need.segment_id ORDER BY sub.created_at, sub.id, f.ip) AS rn
    FROM need
    CROSS JOIN LATERAL (SELECT sn.id, sn.created_at FROM subnets sn WHERE sn.segment_id = need.segment_id) sub
    CROSS JOIN LATERAL (SELECT fr.subnet_id, fr.ip FROM ip_free fr WHERE fr.subnet_id = sub.id
                        ORDER BY fr.ip LIMIT need.c FOR UPDATE SKIP LOCKED) f),
  assign AS MATERIALIZED (
    SELECT t.k, t.segment_id, picks.subnet_id, picks.ip
    FROM (SELECT k, segment_id, row_number() OVER (PARTITION BY segment_id ORDER BY k) AS rn
          FROM target WHERE segment_id IS NOT NULL) t
    JOIN picks ON picks.segment_id = t.segment_id AND picks.rn = t.rn),
  taken AS (DELETE FROM ip_free f USING assign WHERE f.subnet_id = assign.subnet_id AND f.ip = assign.ip
    RETURNING f.subnet_id, f.ip),
  held AS (INSERT INTO ip_allocations (subnet_id, ip, port_id)
    SELECT taken.subnet_id, taken.ip, p.id
    FROM taken JOIN assign a ON a.subnet_id = taken.subnet_id AND a.ip = taken.ip JOIN p ON p.k = a.k
    RETURNING subnet_id, ip, port_id)
  UPDATE ports SET binding_host_id = p.host, binding_vif_type = $7, binding_vif_details = $8::jsonb,
    binding_profile = p.profile::jsonb, binding_segment_id = a.segment_id, status = 'DOWN', updated_at = now()
  FROM held JOIN p ON p.id = held.port_id JOIN assign a ON a.k = p.k
  WHERE ports.id = held.port_id
  RETURNING ports.*, p.k AS bind_k, held.subnet_id AS held_subnet_id, held.ip AS held_ip,
    a.segment_id AS held_segment_id`;

interface DeferredBind {
  req: { portId: string; host: string; bindingProfile: Record<string, string> };
  caller: Caller;
}

async function bindDeferredPorts(q: Queryable, binds: DeferredBind[]): Promise<(Row | null)[]> {
  const values: unknown[][] = [];
  const seen = new Set<string>();
  binds.forEach(({ req, caller }, k) => {
    const id = req.portId.toLowerCase();
    // The same port twice in one statement would get two addresses: a repeat takes the full path.
    if (!req.host || !isUuid(id) || seen.has(id)) return;
    seen.add(id);
    values.push([
      k,
      id,
      req.host,
      JSON.stringify(req.bindingProfile ?? {}),
      caller.isAdmin,
      caller.projectId,
    ]);
  });
  const result: (Row | null)[] = binds.map(() => null);
  if (!values.length) return result;
  const cols = columns(values, 6);
  const rows = await q.query(BIND_DEFERRED_SQL, [...cols, VIF_TYPE, JSON.stringify(VIF_DETAILS)], {
    name: "net_bind_deferred_ports",
  });
  for (const row of rows) result[Number(row.bind_k)] = row;
  return result;
}

/**
 * The first binds of deferred ports asked for in one turn, in one statement (bindDeferredPorts):
 * the conductor binds the ports of many builds as their hosts are chosen.
 */
export class DeferredBindBatcher {
  private readonly batcher: TurnBatcher<DeferredBind, Row | null>;

  constructor(q: Queryable) {
    this.batcher = new TurnBatcher((binds) => bindDeferredPorts(q, binds), PORT_BATCHES);
  }

  /** The bound port and its segment (events in out), or undefined: bindPort must answer. */
  async bind(
    req: DeferredBind["req"],
    caller: Caller,
    out: Outbox,
  ): Promise<{ port: PortRec; segmentId: string } | undefined> {
    const row = await this.batcher.add({ req, caller });
    if (!row) return undefined;
    // A bind's segment is never null: the statement binds only onto a segment it chose.
    const { port, segmentId } = portWithHeldAddress(row, out, PortChange.BOUND);
    return { port, segmentId: segmentId! };
  }
}

export async function bindPort(
  tx: Tx,
  req: { portId: string; host: string; bindingProfile: Record<string, string> },
): Promise<{ port: PortRec; segmentId: string }> {
  if (!req.host) throw invalidInput("host is required to bind a port");
  const ctx = await bindContext(tx, req.portId, req.host);
  const { port, segments, subnets, physnets } = ctx;
  let ips = ctx.ips;
  const reachable = segments.filter((s) => reaches(s, physnets));
  let segmentId: string;
  if (ctx.routed) {
    const withSubnets = reachable.filter((s) => subnets.some((sub) => sub.segment_id === s.id));
    if (!withSubnets.length) {
      throw invalidInput(
        `Host ${req.host} is not connected to any segments on routed provider network '${port.networkId}'. It should be connected to one.`,
      );
    }
    const held = port.fixedIps.map((f) => subnets.find((s) => s.id === f.subnetId)!);
    const heldSegment = held[0]?.segment_id ?? null;
    if (held.length && withSubnets.some((s) => s.id === heldSegment)) {
      segmentId = heldSegment!;
    } else if (held.length && port.ipAllocation !== IpAllocation.DEFERRED) {
      throw invalidInput(
        `Host ${req.host} is not connected to a segment where the existing fixed_ips on port ${port.id} will function given the routed network topology.`,
      );
    } else {
      // Deferred port with no address yet, or moving to another segment: (re)allocate there.
      if (held.length) {
        await releasePortIps(tx, port.id);
        ips = [];
      }
      const target = withSubnets[0]!;
      segmentId = target.id;
      if (port.ipAllocation !== IpAllocation.NONE) {
        const got = await allocateFromAny(
          tx,
          subnets.filter((s) => s.segment_id === target.id),
          port.id,
          port.networkId,
        );
        ips = [...ips, { subnetId: got.subnet.id, ip: got.ip }];
      }
    }
  } else {
    if (!reachable.length) {
      throw invalidInput(
        `Host ${req.host} cannot reach network ${port.networkId}: none of its physical networks (${physnets.join(", ") || "none"}) carries a segment of it`,
      );
    }
    segmentId = reachable[0]!.id;
    if (port.ipAllocation === IpAllocation.DEFERRED && !port.fixedIps.length && subnets.length) {
      const got = await allocateFromAny(tx, subnets, port.id, port.networkId);
      ips = [...ips, { subnetId: got.subnet.id, ip: got.ip }];
    }
  }
  const [updated] = await tx.q.query(
    `UPDATE ports SET binding_host_id = $2, binding_vif_type = $3, binding_vif_details = $4::jsonb,
       binding_profile = $5::jsonb, binding_segment_id = $6, status = 'DOWN', updated_at = now()
     WHERE id = $1 RETURNING *`,
    [
      port.id,
      req.host,
      VIF_TYPE,
      JSON.stringify(VIF_DETAILS),
      JSON.stringify(req.bindingProfile ?? {}),
      segmentId,
    ],
  );
  const bound = portFromRow(updated!, ips);
  portEvent(tx, PortChange.BOUND, bound);
  return { port: bound, segmentId };
}

export async function unbindPort(tx: Tx, req: { portId: string; clearDevice: boolean }): Promise<PortRec> {
  const port = await getPort(tx, req.portId, { forUpdate: true });
  if (port.ipAllocation === IpAllocation.DEFERRED) await releasePortIps(tx, port.id);
  await tx.q.query(
    `UPDATE ports SET binding_host_id = '', binding_vif_type = 'unbound', binding_vif_details = '{}',
       binding_profile = '{}', binding_segment_id = NULL, status = 'DOWN',
       device_id = CASE WHEN $2 THEN '' ELSE device_id END,
       device_owner = CASE WHEN $2 THEN '' ELSE device_owner END, updated_at = now() WHERE id = $1`,
    [port.id, req.clearDevice],
  );
  const unbound = await getPort(tx, port.id);
  portEvent(tx, PortChange.UNBOUND, unbound);
  return unbound;
}

export type PortDetails = MessageInitShape<typeof PortDetailsSchema>;

/**
 * CheckAndUpdatePorts of several calls in one statement (no transaction around it): lock the
 * calls' ports in id order and read them with their addresses, segment and network MTU, and mark
 * a call's ports ACTIVE only if every one of them is there, claimed by its server, bound to its
 * host and holding its addresses (each call all or nothing on its own). The rows come back as
 * they were before the update, tagged with their call (k) and whether that call's ports fit.
 */
const CHECK_AND_UPDATE_SQL = `WITH want AS (SELECT * FROM unnest($1::int[], $2::uuid[]) AS w(k, id)),
req AS (SELECT * FROM unnest($3::int[], $4::text[], $5::text[], $6::int[]) AS r(k, server_id, host, n)),
locked AS MATERIALIZED (
  SELECT want.k, p.*, n.mtu AS net_mtu, s.network_type AS seg_network_type, s.physical_network AS seg_physical_network,
    s.segmentation_id AS seg_segmentation_id,
    (SELECT coalesce(json_agg(json_build_object('subnet_id', a.subnet_id, 'ip', a.ip)), '[]'::json)
     FROM ip_allocations a WHERE a.port_id = p.id) AS fixed
  FROM want JOIN ports p ON p.id = want.id LEFT JOIN networks n ON n.id = p.network_id
    LEFT JOIN segments s ON s.id = p.binding_segment_id
  ORDER BY p.id FOR UPDATE OF p),
ok AS MATERIALIZED (SELECT req.k FROM req LEFT JOIN locked l ON l.k = req.k
  GROUP BY req.k, req.n, req.server_id, req.host
  HAVING count(l.id) = req.n AND coalesce(bool_and(l.device_id = req.server_id AND l.binding_host_id = req.host
    AND (l.ip_allocation = 'none' OR json_array_length(l.fixed) > 0)), false)),
u AS (UPDATE ports SET status = 'ACTIVE', binding_vif_type = $7, binding_vif_details = $8::jsonb, updated_at = now()
  FROM locked JOIN ok ON ok.k = locked.k WHERE ports.id = locked.id RETURNING ports.id)
SELECT locked.*, EXISTS (SELECT 1 FROM ok WHERE ok.k = locked.k) AS fits FROM locked`;

/** One CheckAndUpdatePorts call, checked for what needs no database, ready for the statement. */
interface PortCheck {
  req: { serverId: string; host: string; portIds: string[] };
  /** The ids asked for, each once, in the order asked. */
  ids: string[];
  /** The ids that are uuids, as asked. */
  valid: string[];
  /** The valid ids in lower case, each once, sorted: what the statement locks. */
  ordered: string[];
  problems: string[];
}

function preparePortCheck(req: PortCheck["req"]): PortCheck {
  if (!req.serverId || !req.host) throw invalidInput("server_id and host are required");
  const ids = [...new Set(req.portIds)];
  const problems: string[] = [];
  const valid = ids.filter((id) => {
    try {
      checkId(id, "Port");
      return true;
    } catch {
      problems.push(`port ${id} does not exist`);
      return false;
    }
  });
  const ordered = [...new Set(valid.map((i) => i.toLowerCase()))].sort();
  return { req, ids, valid, ordered, problems };
}

/** The statement for several calls at once: each call's rows, in the order of the calls. */
async function checkAndUpdateRows(q: Queryable, checks: PortCheck[]): Promise<Row[][]> {
  const wanted: unknown[][] = [];
  const calls: unknown[][] = [];
  checks.forEach((c, i) => {
    if (!c.ordered.length) return;
    for (const pid of c.ordered) wanted.push([i, pid]);
    // An id that is not a uuid is already a problem: nothing of that call may be updated.
    calls.push([i, c.req.serverId, c.req.host, c.problems.length ? -1 : c.ordered.length]);
  });
  const result: Row[][] = checks.map(() => []);
  if (!wanted.length) return result;
  const params = [...columns(wanted, 2), ...columns(calls, 4), VIF_TYPE, JSON.stringify(VIF_DETAILS)];
  const rows = await q.query(CHECK_AND_UPDATE_SQL, params, {
    name: "net_check_and_update_ports",
  });
  for (const r of rows) result[Number(r.k)]!.push(r);
  return result;
}

/**
 * Gathers the CheckAndUpdatePorts calls of one turn into one statement (checkAndUpdateRows): the
 * agents of many hosts check the ports of many builds at once. If the statement fails, each call
 * is run again alone, so one call's trouble reaches only that call.
 */
export class PortCheckBatcher {
  private readonly batcher: TurnBatcher<PortCheck, Row[]>;

  constructor(q: Queryable) {
    this.batcher = new TurnBatcher((checks) => checkAndUpdateRows(q, checks), PORT_BATCHES);
  }

  /**
   * The compute agent's call: verifies each port (exists, belongs to the server, is bound to this
   * host, has its addresses) and marks it ACTIVE. Allocates nothing; one failing port fails all.
   */
  async check(out: Outbox, req: PortCheck["req"]): Promise<PortDetails[]> {
    const check = preparePortCheck(req);
    return portCheckDetails(out, check, check.ordered.length ? await this.batcher.add(check) : []);
  }
}

/** The checks' verdict on a call's rows: its ports' details (events in out), or the refusal. */
function portCheckDetails(out: Outbox, check: PortCheck, rows: Row[]): PortDetails[] {
  const { req, ids, valid } = check;
  const problems = [...check.problems];
  const byId = new Map(
    rows.map((r) => {
      const fixed = jsonColumn<{ subnet_id: string; ip: string | number }[]>(r.fixed);
      const port = portFromRow(
        r,
        fixed.map((f) => ({ subnetId: String(f.subnet_id), ip: Number(f.ip) })),
      );
      return [port.id, { port, row: r }] as const;
    }),
  );
  let kind: "not_found" | "port_in_use" | "invalid_input" = problems.length ? "not_found" : "invalid_input";
  for (const id of valid) {
    const p = byId.get(id.toLowerCase())?.port;
    if (!p) {
      problems.push(`port ${id} does not exist`);
      kind = "not_found";
      continue;
    }
    if (p.deviceId !== req.serverId) {
      problems.push(
        p.deviceId
          ? `port ${p.id} belongs to device ${p.deviceId}, not server ${req.serverId}`
          : `port ${p.id} is not claimed by server ${req.serverId} (no device_id)`,
      );
      if (kind !== "not_found" && p.deviceId) kind = "port_in_use";
    }
    if (p.bindingHostId !== req.host) {
      problems.push(
        p.bindingHostId
          ? `port ${p.id} is bound to host ${p.bindingHostId}, not ${req.host}`
          : `port ${p.id} is not bound to any host (expected ${req.host})`,
      );
    }
    if (p.ipAllocation !== IpAllocation.NONE && !p.fixedIps.length && p.bindingHostId === req.host) {
      problems.push(`port ${p.id} has no IP address (ip_allocation ${IP_ALLOCATION_NAMES[p.ipAllocation]})`);
    }
  }
  if (problems.length) throw new StratusError(kind, `CheckAndUpdatePorts refused: ${problems.join("; ")}`);
  if (rows.length && !rows[0]!.fits) {
    // The checks above and the statement's agree; a difference is a bug, not a client error.
    throw new StratusError("internal", "CheckAndUpdatePorts: the ports changed while being checked");
  }
  const details: PortDetails[] = [];
  for (const id of ids) {
    const { port: p, row } = byId.get(id.toLowerCase())!;
    const active = {
      ...p,
      status: "ACTIVE",
      bindingVifType: VIF_TYPE,
      bindingVifDetails: { ...VIF_DETAILS },
    };
    portEvent({ out }, PortChange.UPDATED, active);
    const segment = row.seg_network_type !== null && row.seg_network_type !== undefined;
    details.push({
      portId: p.id,
      macAddress: p.macAddress ?? "",
      fixedIps: p.fixedIps,
      networkId: p.networkId,
      segmentId: p.bindingSegmentId,
      networkType: segment ? String(row.seg_network_type) : "",
      physicalNetwork: segment ? String(row.seg_physical_network) : "",
      segmentationId: segment ? Number(row.seg_segmentation_id) : 0,
      vifType: VIF_TYPE,
      vifDetails: VIF_DETAILS,
      mtu: Number(row.net_mtu ?? 0),
    });
  }
  return details;
}
