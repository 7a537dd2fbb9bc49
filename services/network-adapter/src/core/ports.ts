// Ports: their lifecycle (create, read, list, delete, claim; updates: port-update.ts). CreatePort is the
// transactional path, which serves every request: fixed IPs, no or deferred allocation, router
// ports, and whatever the statements gathered per turn (port-statements.ts) leave to it; it waits
// for addresses locked by allocations in flight, and explains a refusal. Binding: binding.ts.
import { randomUUID } from "node:crypto";
import { PortChange } from "@stratus/contracts/events/v1";
import {
  type CreatePortRequest,
  type FixedIp,
  IpAllocation,
  type ListPortsRequest,
} from "@stratus/contracts/network/v1";
import { conflict, currentContext, invalidInput, notFound, StratusError } from "@stratus/runtime";
import { contains, parseCidr, parseIp } from "../ipam/ipv4.js";
import { owningProject, type Tx } from "./context.js";
import { checkId } from "./ids.js";
import { allocateFromAny, allocateSpecific, releasePortIps, type SubnetRow, subnetRows } from "./ipam.js";
import { PORT_LIST } from "./list-fields.js";
import { planList, SqlParams } from "./list-query.js";
import { IP_ALLOCATION_NAMES, loadPorts, type PortRec, portFromRow } from "./model.js";
import { getNetworkBrief } from "./network-access.js";
import {
  insertDrawingMacs,
  insertPortsSql,
  MAC_TAKEN,
  NEW_PORT_COLUMNS,
  NEW_PORT_REQUESTS_SQL,
  newPortColumns,
  portMacSql,
} from "./new-ports.js";
import { noteReservedChange, portEvent } from "./port-events.js";
import {
  allocationMode,
  attachedToServer,
  callerParams,
  isRouterPort,
  MAC_PATTERN,
  portVisibleSql,
  revisedSql,
} from "./rules.js";

/** SQL: port `p` is visible to the transaction's caller, with its parameters from $first on. */
function visiblePortSql(tx: Tx, first: number): { sql: string; params: unknown[] } {
  const caller = callerParams(tx.caller, first);
  return { sql: portVisibleSql("p", caller.sql), params: caller.params };
}

export async function getPort(tx: Tx, id: string, opts: { forUpdate?: boolean } = {}): Promise<PortRec> {
  const pid = checkId(id, "Port");
  if (opts.forUpdate) await tx.q.query("SELECT 1 FROM ports WHERE id = $1 FOR UPDATE", [pid]);
  const vis = visiblePortSql(tx, 2);
  const [port] = await loadPorts(tx.q, `p.id = $1 AND ${vis.sql}`, [pid, ...vis.params]);
  if (!port) throw notFound(`Port ${id} could not be found`);
  return port;
}

export async function listPorts(
  tx: Tx,
  req: ListPortsRequest,
): Promise<{ items: PortRec[]; hasMore: boolean }> {
  const params = new SqlParams();
  const vis = visiblePortSql(tx, params.next);
  params.addAll(vis.params);
  const where = [vis.sql];
  if (req.ids.length) {
    where.push(
      `p.id::text = ANY(${params.add(
        req.ids.map((i) => i.toLowerCase()),
        "::text[]",
      )})`,
    );
  }
  if (req.networkId) where.push(`p.network_id::text = ${params.add(req.networkId.toLowerCase())}`);
  if (req.deviceId) where.push(`p.device_id = ${params.add(req.deviceId)}`);
  if (req.projectId) where.push(`p.project_id = ${params.add(req.projectId)}`);
  if (req.bindingHostId) where.push(`p.binding_host_id = ${params.add(req.bindingHostId)}`);
  if (req.deviceOwner) where.push(`p.device_owner = ${params.add(req.deviceOwner)}`);
  const plan = await planList(tx.q, PORT_LIST, req.query, where, params);
  return plan.page(await loadPorts(tx.q, plan.where, params.values, plan.order));
}

/**
 * Allocates explicitly requested fixed IPs; together with those the port already holds
 * (`held`), all must be on one segment of a routed network.
 */
export async function allocateFixedIps(
  tx: Tx,
  net: { id: string },
  portId: string,
  fixedIps: FixedIp[],
  opts: { allowGateway?: boolean; held?: { subnetId: string }[] } = {},
): Promise<{ subnetId: string; ip: number }[]> {
  const subnets = await subnetRows(tx, "network_id = $1", [net.id]);
  const used: SubnetRow[] = (opts.held ?? []).flatMap((h) => subnets.filter((s) => s.id === h.subnetId));
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

/** One new port (NEW_PORT_REQUESTS_SQL with one request), its ip_allocation as the parameter after them. */
const INSERT_PORT_SQL = `WITH r AS (${NEW_PORT_REQUESTS_SQL}),
  ok AS (SELECT r.*, ${portMacSql("r")} AS port_mac FROM r)
  ${insertPortsSql("ok", `$${NEW_PORT_COLUMNS + 1}::text`)}`;

export async function createPort(
  tx: Tx,
  req: CreatePortRequest,
  opts: CreatePortOptions = {},
): Promise<PortRec> {
  const net = await getNetworkBrief(tx, req.networkId);
  const project = owningProject(req.projectId, tx.caller);
  if (!net.usable) {
    throw new StratusError("forbidden", `Network ${net.id} is neither project ${project}'s nor shared`);
  }
  const mode = allocationMode(req, net.routed);
  if (mode !== IpAllocation.IMMEDIATE && req.fixedIps.length) {
    throw invalidInput(`fixed_ips cannot be given with ip_allocation ${IP_ALLOCATION_NAMES[mode]}`);
  }
  if (mode === IpAllocation.IMMEDIATE && net.routed && !req.fixedIps.length && !req.bindingHostId) {
    throw invalidInput(
      `Network ${net.id} is a routed network: a port on it gets its address when bound to a host (deferred) unless fixed_ips name one`,
    );
  }
  if (req.macAddress && !MAC_PATTERN.test(req.macAddress))
    throw invalidInput(`'${req.macAddress}' is not a valid MAC address`);
  if (!tx.caller.isAdmin && (req.bindingHostId || Object.keys(req.bindingProfile).length)) {
    throw new StratusError("forbidden", "only an admin may set binding:host_id or binding:profile");
  }
  const id = randomUUID();
  const [inserted] = await insertDrawingMacs([{ req, caller: tx.caller }], async (items) => {
    const rows = await tx.q.query(INSERT_PORT_SQL, [
      ...newPortColumns(items, [id]),
      IP_ALLOCATION_NAMES[mode],
    ]);
    return [rows[0] ?? MAC_TAKEN];
  });
  if (inserted === MAC_TAKEN && req.macAddress) {
    throw conflict(
      `Unable to complete operation for network ${net.id}. The mac address ${req.macAddress} is in use.`,
    );
  }
  if (!inserted || inserted === MAC_TAKEN) {
    throw new StratusError("unavailable", "could not generate a unique MAC address; try again");
  }
  let ips: { subnetId: string; ip: number }[] = [];
  if (req.fixedIps.length) {
    ips = await allocateFixedIps(tx, net, id, req.fixedIps, opts);
  } else if (mode === IpAllocation.IMMEDIATE && !(net.routed && req.bindingHostId)) {
    // A port of a routed network with a host gets its address when bound, from the host's segment.
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

/** Whether a router of that id exists (a router port outliving its router may be deleted, as in Neutron). */
async function routerExists(tx: Tx, id: string): Promise<boolean> {
  return (await tx.q.query("SELECT 1 FROM routers WHERE id::text = $1", [id])).length > 0;
}

/**
 * Deletes a port and releases its addresses. A router's port goes only with its router (or
 * interface), while that router exists; with `refuseIfAttached` (the public API) a port a server uses is refused rather
 * than taken from under it (Neutron would delete it and tell Nova; here the server keeps it).
 */
export async function deletePort(
  tx: Tx,
  id: string,
  opts: { internal?: boolean; refuseIfAttached?: boolean } = {},
): Promise<PortRec> {
  const port = await getPort(tx, id, { forUpdate: true });
  if (!opts.internal && isRouterPort(port.deviceOwner) && (await routerExists(tx, port.deviceId))) {
    throw conflict(
      `Port ${port.id} cannot be deleted directly via the port API: has device owner ${port.deviceOwner}.`,
    );
  }
  if (opts.refuseIfAttached && port.deviceId && attachedToServer(port.deviceOwner)) {
    throw conflict(
      `Port ${port.id} cannot be deleted: it is attached to server ${port.deviceId}; detach it from the server first.`,
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
  await tx.q.query(
    `UPDATE ports SET device_id = $2, device_owner = $3, ${revisedSql("ports")} WHERE id = $1`,
    [port.id, req.deviceId, req.deviceOwner || port.deviceOwner || "compute:nova"],
  );
  const claimed = await getPort(tx, port.id);
  portEvent(tx, PortChange.UPDATED, claimed);
  return claimed;
}
