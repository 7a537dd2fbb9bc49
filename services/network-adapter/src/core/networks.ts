// Networks: creation (with their segments), listing, updates and deletion, with Neutron's rules
// (one default external network, sharing that cannot be taken from projects using it, an external
// network with gateways stays external, deletion refused while ports use it). Finding one as the
// caller may see it is network-access.ts.
import { randomUUID } from "node:crypto";
import type {
  CreateNetworkRequest,
  ListNetworksRequest,
  UpdateNetworkRequest,
} from "@stratus/contracts/network/v1";
import { conflict, invalidInput, StratusError } from "@stratus/runtime";
import { asAdmin, owningProject, type Tx } from "./context.js";
import { NETWORK_LIST } from "./list-fields.js";
import { planList, SqlParams } from "./list-query.js";
import { loadNetworks, type NetworkRec } from "./model.js";
import { getNetwork, getOwnNetwork, visibleNetworkSql } from "./network-access.js";
import { deletePort } from "./ports.js";
import { networkEvent, segmentEvent, subnetEvent } from "./resource-events.js";
import { AUTO_DELETED_PORT_OWNERS, keepsInUseSql, ROUTER_GATEWAY_OWNER, revisedSql } from "./rules.js";
import { checkSegmentSpecs, insertSegment } from "./segments.js";

/** The MTU a network may have (IPv4's minimum to a jumbo frame). */
const MTU = { min: 68, max: 9000, default: 1450 };

function checkMtu(mtu: number): void {
  if (mtu < MTU.min || mtu > MTU.max) throw invalidInput(`mtu ${mtu} is outside ${MTU.min}..${MTU.max}`);
}

/**
 * Serialises the changes that may make a network the default external one, then refuses when
 * another already is (the unique index networks_one_default_external stays the judge).
 */
async function claimDefaultExternal(tx: Tx, networkId: string): Promise<void> {
  await tx.q.query("SELECT pg_advisory_xact_lock(hashtext('stratus.network.default_external'))");
  const [other] = await tx.q.query<{ id: string }>(
    "SELECT id FROM networks WHERE router_external AND is_default AND id <> $1",
    [networkId],
  );
  if (other) throw conflict(`A default external network already exists: ${other.id}.`);
}

export async function createNetwork(tx: Tx, req: CreateNetworkRequest): Promise<NetworkRec> {
  const project = owningProject(req.projectId, tx.caller);
  if (!tx.caller.isAdmin && (req.shared || req.routerExternal || req.isDefault || req.segments.length)) {
    throw new StratusError("forbidden", "only an admin may create shared, external or provider networks");
  }
  if (req.isDefault && !req.routerExternal) {
    throw invalidInput("is_default is only meaningful on a router:external network");
  }
  if (req.mtu) checkMtu(req.mtu);
  checkSegmentSpecs(req.segments);
  const id = randomUUID();
  if (req.isDefault) await claimDefaultExternal(tx, id);
  await tx.q.query(
    `INSERT INTO networks (id, name, description, project_id, shared, router_external, is_default, mtu, admin_state_up)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
    [
      id,
      req.name,
      req.description,
      project,
      req.shared,
      req.routerExternal,
      req.isDefault,
      req.mtu || MTU.default,
      req.adminStateUp ?? true,
    ],
  );
  const segments = req.segments.length
    ? req.segments
    : [{ name: "", description: "", networkType: "vxlan", physicalNetwork: "", segmentationId: 0 }];
  for (const s of segments) await insertSegment(tx, id, s);
  networkEvent(tx.out, "created", { id, projectId: project });
  return getNetwork(tx, id);
}

export async function listNetworks(
  tx: Tx,
  req: ListNetworksRequest,
): Promise<{ items: NetworkRec[]; hasMore: boolean }> {
  const params = new SqlParams();
  const vis = visibleNetworkSql(tx, "n", params.next);
  params.addAll(vis.params);
  const where = [vis.sql];
  if (req.ids.length) {
    where.push(
      `n.id::text = ANY(${params.add(
        req.ids.map((i) => i.toLowerCase()),
        "::text[]",
      )})`,
    );
  }
  if (req.name) where.push(`n.name = ${params.add(req.name)}`);
  if (req.projectId) where.push(`n.project_id = ${params.add(req.projectId)}`);
  if (req.shared !== undefined) where.push(`n.shared = ${params.add(req.shared)}`);
  if (req.routerExternal !== undefined) where.push(`n.router_external = ${params.add(req.routerExternal)}`);
  if (req.isDefault !== undefined) where.push(`n.is_default = ${params.add(req.isDefault)}`);
  const plan = await planList(tx.q, NETWORK_LIST, req.query, where, params);
  return plan.page(await loadNetworks(tx.q, plan.where, params.values, plan.order));
}

export async function updateNetwork(tx: Tx, req: UpdateNetworkRequest): Promise<NetworkRec> {
  const net = await getOwnNetwork(tx, req.id, { forUpdate: true });
  const adminOnly =
    req.shared !== undefined || req.isDefault !== undefined || req.routerExternal !== undefined;
  if (!tx.caller.isAdmin && adminOnly) {
    throw new StratusError("forbidden", "only an admin may change shared, router:external or is_default");
  }
  const external = req.routerExternal ?? net.routerExternal;
  // A network that stops being external stops being the default one.
  const isDefault = external ? (req.isDefault ?? net.isDefault) : false;
  if (req.isDefault && !external) {
    throw invalidInput("is_default is only meaningful on a router:external network");
  }
  if (req.mtu !== undefined) checkMtu(req.mtu);
  if (net.routerExternal && !external) {
    const [gateway] = await tx.q.query(
      "SELECT 1 FROM ports WHERE network_id = $1 AND device_owner = $2 LIMIT 1",
      [net.id, ROUTER_GATEWAY_OWNER],
    );
    if (gateway) {
      throw conflict(
        `External network ${net.id} cannot be updated to be made non-external, since it has existing gateway ports.`,
      );
    }
  }
  if (net.shared && req.shared === false) {
    const [other] = await tx.q.query(
      "SELECT 1 FROM ports WHERE network_id = $1 AND project_id <> $2 AND project_id <> '' LIMIT 1",
      [net.id, net.projectId],
    );
    if (other) {
      throw conflict(
        `Unable to reconfigure sharing settings for network ${net.id}. Multiple projects are using it.`,
      );
    }
  }
  if (isDefault && !net.isDefault) await claimDefaultExternal(tx, net.id);
  await tx.q.query(
    `UPDATE networks SET name = COALESCE($2, name), description = COALESCE($3, description),
       shared = COALESCE($4, shared), router_external = $5, is_default = $6,
       admin_state_up = COALESCE($7, admin_state_up), mtu = COALESCE($8, mtu), ${revisedSql("networks")}
     WHERE id = $1`,
    [
      net.id,
      req.name ?? null,
      req.description ?? null,
      req.shared ?? null,
      external,
      isDefault,
      req.adminStateUp ?? null,
      req.mtu ?? null,
    ],
  );
  networkEvent(tx.out, "updated", net);
  return getNetwork(tx, net.id);
}

/**
 * Deletes a network, its subnets and segments, and the ports it owns itself; refused while any
 * other port is on it (Neutron's NetworkInUse) or while it belongs to an auto-allocated topology.
 */
export async function deleteNetwork(tx: Tx, id: string): Promise<void> {
  const net = await getOwnNetwork(tx, id, { forUpdate: true });
  const inUse = await tx.q.query<{ id: string }>(
    `SELECT p.id FROM ports p WHERE p.network_id = $1 AND ${keepsInUseSql("p")} ORDER BY p.id`,
    [net.id],
  );
  if (inUse.length) {
    throw conflict(
      `Unable to complete operation on network ${net.id}. There are one or more ports still in use on the network, id for these ports is: ${inUse.map((p) => p.id).join(",")}.`,
    );
  }
  const topo = await tx.q.query("SELECT project_id FROM auto_allocated_topologies WHERE network_id = $1", [
    net.id,
  ]);
  if (topo.length) throw conflict(`Network ${net.id} is an auto-allocated topology; delete that instead`);
  const owned = await tx.q.query<{ id: string }>(
    "SELECT id FROM ports WHERE network_id = $1 AND device_owner = ANY($2::text[])",
    [net.id, AUTO_DELETED_PORT_OWNERS],
  );
  for (const p of owned) await deletePort(asAdmin(tx), p.id, { internal: true });
  const subnets = await tx.q.query<{ id: string; segment_id: string | null; project_id: string }>(
    "DELETE FROM subnets WHERE network_id = $1 RETURNING id, segment_id, project_id",
    [net.id],
  );
  const segments = await tx.q.query<{ id: string }>(
    "DELETE FROM segments WHERE network_id = $1 RETURNING id",
    [net.id],
  );
  await tx.q.query("DELETE FROM networks WHERE id = $1", [net.id]);
  for (const s of subnets) {
    subnetEvent(tx.out, "deleted", {
      id: s.id,
      networkId: net.id,
      segmentId: s.segment_id ?? "",
      projectId: s.project_id,
    });
  }
  for (const s of segments) {
    tx.out.removedSegments.add(s.id);
    segmentEvent(tx.out, "deleted", { id: s.id, networkId: net.id });
  }
  networkEvent(tx.out, "deleted", net);
}
