// Networks: creation (with their segments), listing, updates and deletion. Finding one as the
// caller may see it is network-access.ts.
import { randomUUID } from "node:crypto";
import { NetworkChangedSchema } from "@stratus/contracts/events/v1";
import type {
  CreateNetworkRequest,
  ListNetworksRequest,
  UpdateNetworkRequest,
} from "@stratus/contracts/network/v1";
import { conflict, invalidInput, StratusError, Subjects } from "@stratus/runtime";
import { isUniqueViolation, owningProject, type Tx } from "./context.js";
import { loadNetworks, type NetworkRec } from "./model.js";
import { getNetwork, getOwnNetwork, visibleNetworkSql } from "./network-access.js";
import { insertSegment } from "./segments.js";

export async function createNetwork(tx: Tx, req: CreateNetworkRequest): Promise<NetworkRec> {
  const project = owningProject(req.projectId, tx.caller);
  if (!tx.caller.isAdmin && (req.shared || req.routerExternal || req.segments.length)) {
    throw new StratusError("forbidden", "only an admin may create shared, external or provider networks");
  }
  if (req.isDefault && !req.routerExternal) {
    throw invalidInput("is_default is only meaningful on a router:external network");
  }
  if (req.mtu && (req.mtu < 68 || req.mtu > 9000)) throw invalidInput(`mtu ${req.mtu} is outside 68..9000`);
  const id = randomUUID();
  try {
    await tx.q.query(
      `INSERT INTO networks (id, name, project_id, shared, router_external, is_default, mtu)
       VALUES ($1, $2, $3, $4, $5, $6, $7)`,
      [id, req.name, project, req.shared, req.routerExternal, req.isDefault, req.mtu || 1450],
    );
  } catch (err) {
    if (isUniqueViolation(err)) {
      const [other] = await tx.q.query("SELECT id FROM networks WHERE router_external AND is_default");
      throw conflict(`A default external network already exists: ${String(other?.id ?? "")}.`);
    }
    throw err;
  }
  const segments = req.segments.length
    ? req.segments
    : [{ name: "", networkType: "vxlan", physicalNetwork: "", segmentationId: 0 }];
  for (const s of segments) await insertSegment(tx, id, s);
  tx.out.add(Subjects.networkCreated, NetworkChangedSchema, { networkId: id, projectId: project });
  return getNetwork(tx, id);
}

export async function listNetworks(tx: Tx, req: ListNetworksRequest): Promise<NetworkRec[]> {
  const vis = visibleNetworkSql(tx, "n", 1);
  const params: unknown[] = [...vis.params];
  const where = [vis.sql];
  const add = (sql: (n: number) => string, v: unknown) => {
    params.push(v);
    where.push(sql(params.length));
  };
  if (req.ids.length)
    add(
      (n) => `n.id::text = ANY($${n}::text[])`,
      req.ids.map((i) => i.toLowerCase()),
    );
  if (req.name) add((n) => `n.name = $${n}`, req.name);
  if (req.projectId) add((n) => `n.project_id = $${n}`, req.projectId);
  if (req.shared !== undefined) add((n) => `n.shared = $${n}`, req.shared);
  if (req.routerExternal !== undefined) add((n) => `n.router_external = $${n}`, req.routerExternal);
  if (req.isDefault !== undefined) add((n) => `n.is_default = $${n}`, req.isDefault);
  return loadNetworks(tx.q, where.join(" AND "), params);
}

export async function updateNetwork(tx: Tx, req: UpdateNetworkRequest): Promise<NetworkRec> {
  const net = await getOwnNetwork(tx, req.id, { forUpdate: true });
  if (!tx.caller.isAdmin && (req.shared !== undefined || req.isDefault !== undefined)) {
    throw new StratusError("forbidden", "only an admin may change shared or is_default");
  }
  if (req.isDefault && !net.routerExternal) {
    throw invalidInput("is_default is only meaningful on a router:external network");
  }
  try {
    await tx.q.query(
      `UPDATE networks SET name = COALESCE($2, name), shared = COALESCE($3, shared),
         is_default = COALESCE($4, is_default), admin_state_up = COALESCE($5, admin_state_up), updated_at = now()
       WHERE id = $1`,
      [net.id, req.name ?? null, req.shared ?? null, req.isDefault ?? null, req.adminStateUp ?? null],
    );
  } catch (err) {
    if (isUniqueViolation(err)) throw conflict("A default external network already exists.");
    throw err;
  }
  return getNetwork(tx, net.id);
}

export async function deleteNetwork(tx: Tx, id: string): Promise<void> {
  const net = await getOwnNetwork(tx, id, { forUpdate: true });
  const ports = await tx.q.query<{ n: string }>("SELECT count(*) AS n FROM ports WHERE network_id = $1", [
    net.id,
  ]);
  if (Number(ports[0]!.n) > 0) {
    throw conflict(
      `Unable to complete operation on network ${net.id}. There are one or more ports still in use on the network.`,
    );
  }
  const topo = await tx.q.query("SELECT project_id FROM auto_allocated_topologies WHERE network_id = $1", [
    net.id,
  ]);
  if (topo.length) throw conflict(`Network ${net.id} is an auto-allocated topology; delete that instead`);
  const routers = await tx.q.query("SELECT id FROM routers WHERE external_network_id = $1", [net.id]);
  if (routers.length) throw conflict(`Network ${net.id} is the gateway of router ${String(routers[0]!.id)}`);
  const segs = await tx.q.query<{ id: string; physical_network: string }>(
    "SELECT id, physical_network FROM segments WHERE network_id = $1",
    [net.id],
  );
  await tx.q.query("DELETE FROM subnets WHERE network_id = $1", [net.id]);
  await tx.q.query("DELETE FROM segments WHERE network_id = $1", [net.id]);
  await tx.q.query("DELETE FROM networks WHERE id = $1", [net.id]);
  for (const s of segs) tx.out.removedSegments.add(s.id);
  tx.out.add(Subjects.networkDeleted, NetworkChangedSchema, {
    networkId: net.id,
    projectId: net.projectId,
    deleted: true,
  });
}
