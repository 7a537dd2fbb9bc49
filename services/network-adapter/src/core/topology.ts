// Routers, get-me-a-network (auto-allocated topology), available networks and quotas.
import { randomUUID } from "node:crypto";
import { IpAllocation } from "@stratus/contracts/network/v1";
import { conflict, invalidInput, notFound, StratusError } from "@stratus/runtime";
import { type Caller, owningProject, type Tx } from "./context.js";
import { checkId } from "./ids.js";
import { loadNetworks, loadRouters, type NetworkRec, type RouterRec } from "./model.js";
import { getNetwork } from "./network-access.js";
import { createNetwork, deleteNetwork } from "./networks.js";
import { createPort, deletePort } from "./ports.js";
import { networkUsableSql } from "./rules.js";
import { createSubnet, getSubnet } from "./subnets.js";
import type { Work } from "./work.js";

const asAdmin = (tx: Tx): Tx => ({ ...tx, caller: { projectId: "", isAdmin: true } });

// ---- routers --------------------------------------------------------------------------------

export async function getRouter(tx: Tx, id: string, opts: { forUpdate?: boolean } = {}): Promise<RouterRec> {
  const rid = checkId(id, "Router");
  if (opts.forUpdate) await tx.q.query("SELECT 1 FROM routers WHERE id = $1 FOR UPDATE", [rid]);
  const params: unknown[] = [rid];
  let where = "r.id = $1";
  if (!tx.caller.isAdmin) {
    params.push(tx.caller.projectId);
    where += " AND r.project_id = $2";
  }
  const [router] = await loadRouters(tx.q, where, params);
  if (!router) throw notFound(`Router ${id} could not be found`);
  return router;
}

export async function listRouters(tx: Tx, projectId: string): Promise<RouterRec[]> {
  const params: unknown[] = [];
  const where = ["true"];
  if (!tx.caller.isAdmin) {
    params.push(tx.caller.projectId);
    where.push(`r.project_id = $${params.length}`);
  }
  if (projectId) {
    params.push(projectId);
    where.push(`r.project_id = $${params.length}`);
  }
  return loadRouters(tx.q, where.join(" AND "), params);
}

export async function createRouter(
  tx: Tx,
  req: { name: string; projectId: string; externalNetworkId: string },
): Promise<RouterRec> {
  const project = owningProject(req.projectId, tx.caller);
  let ext: NetworkRec | undefined;
  if (req.externalNetworkId) {
    ext = await getNetwork(tx, req.externalNetworkId);
    if (!ext.routerExternal) {
      throw invalidInput(`Bad router request: Network ${ext.id} is not an external network.`);
    }
  }
  const id = randomUUID();
  await tx.q.query(
    "INSERT INTO routers (id, name, project_id, external_network_id) VALUES ($1, $2, $3, $4)",
    [id, req.name, project, ext?.id ?? null],
  );
  if (ext) {
    const gw = await createPort(asAdmin(tx), {
      $typeName: "stratus.network.v1.CreatePortRequest",
      networkId: ext.id,
      projectId: project,
      name: "",
      fixedIps: [],
      deviceId: id,
      deviceOwner: "network:router_gateway",
      macAddress: "",
      ipAllocation: ext.routed ? IpAllocation.DEFERRED : IpAllocation.IMMEDIATE,
      bindingVnicType: "",
    });
    await tx.q.query("UPDATE routers SET gateway_port_id = $2 WHERE id = $1", [id, gw.id]);
  }
  return getRouter(asAdmin(tx), id);
}

export async function addRouterInterface(
  tx: Tx,
  req: { routerId: string; subnetId: string },
): Promise<RouterRec> {
  const router = await getRouter(tx, req.routerId, { forUpdate: true });
  const subnet = await getSubnet(tx, req.subnetId);
  if (!subnet.gatewayIp) {
    throw invalidInput(
      `Bad router request: Subnet ${subnet.id} for router interface must have a gateway IP.`,
    );
  }
  if (router.interfaces!.some((i) => i.subnetId === subnet.id)) {
    throw invalidInput(`Bad router request: Router already has a port on subnet ${subnet.id}.`);
  }
  const port = await createPort(
    asAdmin(tx),
    {
      $typeName: "stratus.network.v1.CreatePortRequest",
      networkId: subnet.networkId,
      projectId: router.projectId,
      name: "",
      fixedIps: [
        { $typeName: "stratus.network.v1.FixedIp", subnetId: subnet.id, ipAddress: subnet.gatewayIp },
      ],
      deviceId: router.id,
      deviceOwner: "network:router_interface",
      macAddress: "",
      ipAllocation: IpAllocation.IMMEDIATE,
      bindingVnicType: "",
    },
    { allowGateway: true },
  );
  await tx.q.query("INSERT INTO router_interfaces (router_id, subnet_id, port_id) VALUES ($1, $2, $3)", [
    router.id,
    subnet.id,
    port.id,
  ]);
  return getRouter(asAdmin(tx), router.id);
}

async function destroyRouter(tx: Tx, router: RouterRec): Promise<void> {
  const admin = asAdmin(tx);
  const ifaces = await tx.q.query<{ port_id: string }>(
    "SELECT port_id FROM router_interfaces WHERE router_id = $1",
    [router.id],
  );
  await tx.q.query("DELETE FROM router_interfaces WHERE router_id = $1", [router.id]);
  for (const i of ifaces) await deletePort(admin, i.port_id, { internal: true });
  const [row] = await tx.q.query<{ gateway_port_id: string | null }>(
    "SELECT gateway_port_id FROM routers WHERE id = $1",
    [router.id],
  );
  await tx.q.query("UPDATE routers SET gateway_port_id = NULL WHERE id = $1", [router.id]);
  if (row?.gateway_port_id) await deletePort(admin, row.gateway_port_id, { internal: true });
  await tx.q.query("DELETE FROM routers WHERE id = $1", [router.id]);
}

export async function deleteRouter(tx: Tx, id: string): Promise<void> {
  const router = await getRouter(tx, id, { forUpdate: true });
  const topo = await tx.q.query("SELECT 1 FROM auto_allocated_topologies WHERE router_id = $1", [router.id]);
  if (topo.length)
    throw conflict(`Router ${router.id} belongs to an auto-allocated topology; delete that instead`);
  await destroyRouter(tx, router);
}

// ---- get me a network -----------------------------------------------------------------------

export async function listAvailableNetworks(tx: Tx, projectId: string): Promise<NetworkRec[]> {
  const project = owningProject(projectId, tx.caller);
  // The networks the project's ports may use, as a non-admin of it would see them; not external.
  const usable = networkUsableSql("n", { isAdmin: "false", projectId: "$1" });
  return loadNetworks(tx.q, `${usable} AND NOT n.router_external`, [project]);
}

interface Prerequisites {
  externalNetworkId?: string;
  poolId?: string;
  reasons: string[];
}

async function prerequisites(tx: Tx): Promise<Prerequisites> {
  const [ext] = await tx.q.query<{ id: string }>(
    "SELECT id FROM networks WHERE router_external AND is_default",
  );
  const [pool] = await tx.q.query<{ id: string }>(
    "SELECT id FROM subnet_pools WHERE is_default AND ip_version = 4",
  );
  const reasons: string[] = [];
  if (!ext) reasons.push("No default router:external network");
  if (!pool) reasons.push("No default subnetpools defined");
  return { externalNetworkId: ext?.id, poolId: pool?.id, reasons };
}

export interface Topology {
  networkId: string;
  subnetId: string;
  routerId: string;
  canAllocate: boolean;
  reasons: string[];
}

async function existingTopology(tx: Tx, project: string): Promise<Topology | undefined> {
  const [row] = await tx.q.query<{ network_id: string; subnet_id: string | null; router_id: string | null }>(
    "SELECT network_id, subnet_id, router_id FROM auto_allocated_topologies WHERE project_id = $1",
    [project],
  );
  if (!row) return undefined;
  return {
    networkId: row.network_id,
    subnetId: row.subnet_id ?? "",
    routerId: row.router_id ?? "",
    canAllocate: true,
    reasons: [],
  };
}

/** Thrown inside the transaction by the loser of the per-project race, to roll its work back. */
class LostTopologyRace extends Error {}

/**
 * GetAutoAllocatedTopology: the project's topology (made on first call unless dryRun). A caller
 * that lost the race to make it had its work rolled back and gets the winner's.
 */
export async function autoAllocatedTopology(
  work: Work,
  caller: Caller,
  projectId: string,
  dryRun: boolean,
): Promise<Topology> {
  const project = owningProject(projectId, caller);
  try {
    return await work.transaction(caller, (tx) => getAutoAllocatedTopology(tx, project, dryRun));
  } catch (err) {
    if (!(err instanceof LostTopologyRace)) throw err;
    return work.transaction(caller, (tx) => getAutoAllocatedTopology(tx, project, false));
  }
}

/** DeleteAutoAllocatedTopology for the project the caller names (its own, or any for an admin). */
export async function removeAutoAllocatedTopology(
  work: Work,
  caller: Caller,
  projectId: string,
): Promise<void> {
  const project = owningProject(projectId, caller);
  await work.transaction(caller, (tx) => deleteAutoAllocatedTopology(tx, project));
}

/**
 * The project's topology, made on first call in ONE transaction: the network row, then the
 * project's row in auto_allocated_topologies (its primary key is where concurrent first callers
 * meet: the losers wait for the winner's commit, find the key taken and roll everything back),
 * then subnet, router, gateway and interface. Nothing is left half-made on failure.
 */
async function getAutoAllocatedTopology(tx: Tx, project: string, dryRun: boolean): Promise<Topology> {
  const existing = await existingTopology(tx, project);
  if (existing) return existing;
  const pre = await prerequisites(tx);
  if (dryRun)
    return {
      networkId: "",
      subnetId: "",
      routerId: "",
      canAllocate: !pre.reasons.length,
      reasons: pre.reasons,
    };
  if (pre.reasons.length) throw conflict(`Deployment error: ${pre.reasons.join("; ")}.`);
  const admin = asAdmin(tx);
  const net = await createNetwork(admin, {
    $typeName: "stratus.network.v1.CreateNetworkRequest",
    name: "auto_allocated_network",
    projectId: project,
    shared: false,
    routerExternal: false,
    isDefault: false,
    mtu: 0,
    segments: [],
  });
  await tx.q.query("UPDATE networks SET admin_state_up = false WHERE id = $1", [net.id]);
  const claimed = await tx.q.query(
    "INSERT INTO auto_allocated_topologies (project_id, network_id) VALUES ($1, $2) ON CONFLICT (project_id) DO NOTHING RETURNING project_id",
    [project, net.id],
  );
  if (!claimed.length) throw new LostTopologyRace();
  try {
    const subnet = await createSubnet(admin, {
      $typeName: "stratus.network.v1.CreateSubnetRequest",
      networkId: net.id,
      segmentId: "",
      projectId: project,
      name: "auto_allocated_subnet_v4",
      cidr: "",
      subnetpoolId: pre.poolId!,
      prefixlen: 0,
      ipVersion: 4,
      gatewayIp: "",
      noGateway: false,
      allocationPools: [],
      enableDhcp: true,
    });
    let router: RouterRec;
    try {
      router = await createRouter(admin, {
        name: "auto_allocated_router",
        projectId: project,
        externalNetworkId: pre.externalNetworkId!,
      });
      await addRouterInterface(admin, { routerId: router.id, subnetId: subnet.id });
    } catch (err) {
      throw conflict(
        `Deployment error: Unable to provide external connectivity (${(err as Error).message}).`,
      );
    }
    await tx.q.query(
      "UPDATE auto_allocated_topologies SET subnet_id = $2, router_id = $3 WHERE project_id = $1",
      [project, subnet.id, router.id],
    );
    await tx.q.query("UPDATE networks SET admin_state_up = true WHERE id = $1", [net.id]);
    return { networkId: net.id, subnetId: subnet.id, routerId: router.id, canAllocate: true, reasons: [] };
  } catch (err) {
    if (err instanceof StratusError && err.message.startsWith("Deployment error")) throw err;
    throw conflict(
      `Deployment error: Unable to provide project private network (${(err as Error).message}).`,
    );
  }
}

async function deleteAutoAllocatedTopology(tx: Tx, project: string): Promise<void> {
  const [row] = await tx.q.query<{ network_id: string; subnet_id: string | null; router_id: string | null }>(
    "SELECT network_id, subnet_id, router_id FROM auto_allocated_topologies WHERE project_id = $1 FOR UPDATE",
    [project],
  );
  if (!row) throw notFound(`No auto-allocated topology for project ${project}`);
  const admin = asAdmin(tx);
  await tx.q.query("DELETE FROM auto_allocated_topologies WHERE project_id = $1", [project]);
  if (row.router_id) await destroyRouter(admin, await getRouter(admin, row.router_id));
  const ports = await tx.q.query("SELECT id FROM ports WHERE network_id = $1 LIMIT 1", [row.network_id]);
  if (ports.length) {
    throw conflict(
      `Unable to delete the auto-allocated network ${row.network_id}: port ${String(ports[0]!.id)} is still in use on it.`,
    );
  }
  await deleteNetwork(admin, row.network_id);
}

// ---- quotas ---------------------------------------------------------------------------------

export const QUOTA_DEFAULTS = {
  floatingIps: 50,
  securityGroups: 10,
  securityGroupRules: 100,
  networks: 100,
  subnets: 100,
  ports: 500,
  routers: 10,
};

export async function quotas(tx: Tx, projectId: string) {
  const project = owningProject(projectId, tx.caller);
  const count = async (table: string) =>
    Number(
      (
        await tx.q.query<{ n: string }>(`SELECT count(*) AS n FROM ${table} WHERE project_id = $1`, [project])
      )[0]!.n,
    );
  return {
    ...QUOTA_DEFAULTS,
    floatingIpsUsed: 0,
    securityGroupsUsed: 0,
    securityGroupRulesUsed: 0,
    portsUsed: await count("ports"),
    networksUsed: await count("networks"),
    subnetsUsed: await count("subnets"),
    routersUsed: await count("routers"),
  };
}
