// Get me a network, network side: the networks a project may use, and its auto-allocated
// topology (Neutron's auto_allocate: a network, a subnet from the default pool, a router to the
// default external network), made once per project, checked by a dry run, deleted on request.
import { create } from "@bufbuild/protobuf";
import {
  CreateNetworkRequestSchema,
  CreateRouterRequestSchema,
  CreateSubnetRequestSchema,
} from "@stratus/contracts/network/v1";
import { conflict, isStratusError, notFound, StratusError } from "@stratus/runtime";
import { asAdmin, type Caller, owningProject, type Tx } from "./context.js";
import { loadNetworks, type NetworkRec } from "./model.js";
import { createNetwork, deleteNetwork } from "./networks.js";
import { addRouterInterface, createRouter, destroyRouter, getRouter } from "./routers.js";
import { networkUsableSql } from "./rules.js";
import { createSubnet } from "./subnets.js";
import type { Work } from "./work.js";

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
  // As Neutron: the external network is looked for first; without a pool the network cannot be made.
  if (!pre.externalNetworkId) throw deploymentError("No default router:external network");
  if (!pre.poolId) throw deploymentError("Unable to provide project private network");
  const admin = asAdmin(tx);
  const net = await createNetwork(
    admin,
    create(CreateNetworkRequestSchema, {
      name: "auto_allocated_network",
      projectId: project,
      adminStateUp: false,
    }),
  );
  const claimed = await tx.q.query(
    "INSERT INTO auto_allocated_topologies (project_id, network_id) VALUES ($1, $2) ON CONFLICT (project_id) DO NOTHING RETURNING project_id",
    [project, net.id],
  );
  if (!claimed.length) throw new LostTopologyRace();
  const subnet = await provisioning("Unable to provide project private network", () =>
    createSubnet(
      admin,
      create(CreateSubnetRequestSchema, {
        networkId: net.id,
        projectId: project,
        name: "auto_allocated_subnet_v4",
        subnetpoolId: pre.poolId!,
        ipVersion: 4,
        enableDhcp: true,
      }),
    ),
  );
  const router = await provisioning("Unable to provide external connectivity", async () => {
    const made = await createRouter(
      admin,
      create(CreateRouterRequestSchema, {
        name: "auto_allocated_router",
        projectId: project,
        externalNetworkId: pre.externalNetworkId!,
      }),
    );
    await addRouterInterface(admin, { routerId: made.id, subnetId: subnet.id, portId: "" });
    return made;
  });
  await tx.q.query(
    "UPDATE auto_allocated_topologies SET subnet_id = $2, router_id = $3 WHERE project_id = $1",
    [project, subnet.id, router.id],
  );
  await tx.q.query("UPDATE networks SET admin_state_up = true WHERE id = $1", [net.id]);
  return { networkId: net.id, subnetId: subnet.id, routerId: router.id, canAllocate: true, reasons: [] };
}

/** Neutron's AutoAllocationFailure. */
const deploymentError = (reason: string, cause?: unknown) =>
  new StratusError("conflict", `Deployment error: ${reason}.`, { cause });

/**
 * One step of the topology: a request Neutron would call bad (invalid, missing, no room in the
 * pool) becomes its AutoAllocationFailure with the step's reason; anything else (a quota
 * exceeded, a conflict) is the caller's answer as it is.
 */
async function provisioning<T>(reason: string, step: () => Promise<T>): Promise<T> {
  try {
    return await step();
  } catch (err) {
    if (
      isStratusError(err, "invalid_input") ||
      isStratusError(err, "not_found") ||
      isStratusError(err, "ip_exhausted")
    ) {
      throw deploymentError(reason, err);
    }
    throw err;
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
