// Routers: no data plane, only the addresses and ports Neutron's L3 API gives them. The external
// gateway is a port (device_owner network:router_gateway, owned by no project, as in Neutron)
// holding an address of the external network; an interface is a port (network:router_interface,
// the router's project) holding an address of each subnet it serves: the subnet's gateway when
// added by subnet, the port's own when added by port. Their ports go with the router's gateway
// and interfaces, never through the port API; a router with interfaces is not deleted.

import { randomUUID } from "node:crypto";
import { create } from "@bufbuild/protobuf";
import { PortChange } from "@stratus/contracts/events/v1";
import {
  type AddRouterInterfaceRequest,
  CreatePortRequestSchema,
  type CreateRouterRequest,
  type FixedIp,
  IpAllocation,
  type ListRoutersRequest,
  type RouterInterfaceInfo,
  UpdatePortRequestSchema,
  type UpdateRouterRequest,
} from "@stratus/contracts/network/v1";
import { conflict, invalidInput, notFound, StratusError } from "@stratus/runtime";
import { overlaps, parseCidr } from "../ipam/ipv4.js";
import { asAdmin, owningProject, type Tx } from "./context.js";
import { checkId } from "./ids.js";
import { ROUTER_LIST } from "./list-fields.js";
import { planList, SqlParams } from "./list-query.js";
import { loadRouters, type RouterRec } from "./model.js";
import { getNetwork } from "./network-access.js";
import { portEvent } from "./port-events.js";
import { updatePort } from "./port-update.js";
import { createPort, deletePort, getPort } from "./ports.js";
import { routerEvent } from "./resource-events.js";
import { ROUTER_GATEWAY_OWNER, ROUTER_INTERFACE_OWNER, revisedSql } from "./rules.js";
import { getSubnet } from "./subnets.js";

function visibleRouterSql(tx: Tx, params: SqlParams): string {
  return tx.caller.isAdmin ? "true" : `r.project_id = ${params.add(tx.caller.projectId)}`;
}

export async function getRouter(tx: Tx, id: string, opts: { forUpdate?: boolean } = {}): Promise<RouterRec> {
  const rid = checkId(id, "Router");
  if (opts.forUpdate) await tx.q.query("SELECT 1 FROM routers WHERE id = $1 FOR UPDATE", [rid]);
  const params = new SqlParams();
  const [router] = await loadRouters(
    tx.q,
    `r.id = ${params.add(rid)} AND ${visibleRouterSql(tx, params)}`,
    params.values,
  );
  if (!router) throw notFound(`Router ${id} could not be found`);
  return router;
}

export async function listRouters(
  tx: Tx,
  req: ListRoutersRequest,
): Promise<{ items: RouterRec[]; hasMore: boolean }> {
  const params = new SqlParams();
  const where = [visibleRouterSql(tx, params)];
  if (req.projectId) where.push(`r.project_id = ${params.add(req.projectId)}`);
  const plan = await planList(tx.q, ROUTER_LIST, req.query, where, params);
  return plan.page(await loadRouters(tx.q, plan.where, params.values, plan.order));
}

/** The admin-only parts of a gateway (Neutron's policy): its addresses and enable_snat. */
function checkGatewayPolicy(tx: Tx, fixedIps: FixedIp[], enableSnat: boolean | undefined): void {
  if (!tx.caller.isAdmin && (fixedIps.length || enableSnat !== undefined)) {
    throw new StratusError("forbidden", "only an admin may set external_fixed_ips or enable_snat");
  }
}

/** Gives the router a gateway port on the external network `networkId`, with those addresses if any. */
async function addGateway(tx: Tx, routerId: string, networkId: string, fixedIps: FixedIp[]): Promise<void> {
  const ext = await getNetwork(tx, networkId);
  if (!ext.routerExternal) {
    throw invalidInput(`Bad router request: Network ${ext.id} is not an external network.`);
  }
  const gw = await createPort(
    asAdmin(tx),
    create(CreatePortRequestSchema, {
      networkId: ext.id,
      fixedIps,
      deviceId: routerId,
      deviceOwner: ROUTER_GATEWAY_OWNER,
      ipAllocation: ext.routed && !fixedIps.length ? IpAllocation.DEFERRED : IpAllocation.IMMEDIATE,
    }),
  );
  await tx.q.query("UPDATE routers SET external_network_id = $2, gateway_port_id = $3 WHERE id = $1", [
    routerId,
    ext.id,
    gw.id,
  ]);
}

/** Takes the router's gateway port away (its addresses are released). */
async function removeGateway(tx: Tx, routerId: string): Promise<void> {
  const [row] = await tx.q.query<{ gateway_port_id: string | null }>(
    "SELECT gateway_port_id FROM routers WHERE id = $1",
    [routerId],
  );
  await tx.q.query("UPDATE routers SET external_network_id = NULL, gateway_port_id = NULL WHERE id = $1", [
    routerId,
  ]);
  if (row?.gateway_port_id) await deletePort(asAdmin(tx), row.gateway_port_id, { internal: true });
}

export async function createRouter(tx: Tx, req: CreateRouterRequest): Promise<RouterRec> {
  const project = owningProject(req.projectId, tx.caller);
  checkGatewayPolicy(tx, req.externalFixedIps, req.enableSnat);
  const id = randomUUID();
  await tx.q.query(
    `INSERT INTO routers (id, name, description, project_id, admin_state_up, enable_snat)
     VALUES ($1, $2, $3, $4, $5, $6)`,
    [id, req.name, req.description, project, req.adminStateUp ?? true, req.enableSnat ?? true],
  );
  if (req.externalNetworkId) await addGateway(tx, id, req.externalNetworkId, req.externalFixedIps);
  const router = await getRouter(asAdmin(tx), id);
  routerEvent(tx.out, "created", router);
  return router;
}

export async function updateRouter(tx: Tx, req: UpdateRouterRequest): Promise<RouterRec> {
  const router = await getRouter(tx, req.id, { forUpdate: true });
  checkGatewayPolicy(tx, req.externalFixedIps, req.enableSnat);
  await tx.q.query(
    `UPDATE routers SET name = COALESCE($2, name), description = COALESCE($3, description),
       admin_state_up = COALESCE($4, admin_state_up), enable_snat = COALESCE($5, enable_snat), ${revisedSql("routers")}
     WHERE id = $1`,
    [router.id, req.name ?? null, req.description ?? null, req.adminStateUp ?? null, req.enableSnat ?? null],
  );
  if (req.updateExternalGateway) {
    const wanted = req.externalNetworkId.toLowerCase();
    if (wanted && wanted === router.externalNetworkId) {
      const [row] = await tx.q.query<{ gateway_port_id: string }>(
        "SELECT gateway_port_id FROM routers WHERE id = $1",
        [router.id],
      );
      if (req.externalFixedIps.length && row?.gateway_port_id) {
        await updatePort(
          asAdmin(tx),
          create(UpdatePortRequestSchema, {
            id: row.gateway_port_id,
            fixedIps: req.externalFixedIps,
            updateFixedIps: true,
          }),
        );
      }
    } else {
      await removeGateway(tx, router.id);
      if (wanted) await addGateway(tx, router.id, wanted, req.externalFixedIps);
    }
  }
  const updated = await getRouter(asAdmin(tx), router.id);
  routerEvent(tx.out, "updated", updated);
  return updated;
}

/** Deletes a router without interfaces (Neutron's RouterInUse otherwise), with its gateway. */
export async function deleteRouter(tx: Tx, id: string): Promise<void> {
  const router = await getRouter(tx, id, { forUpdate: true });
  const topo = await tx.q.query("SELECT 1 FROM auto_allocated_topologies WHERE router_id = $1", [router.id]);
  if (topo.length)
    throw conflict(`Router ${router.id} belongs to an auto-allocated topology; delete that instead`);
  if (router.interfaces!.length) throw conflict(`Router ${router.id} still has ports`);
  await destroyRouter(tx, router);
}

/** Removes a router with its interfaces and gateway (get-me-a-network's clean-up, and deleteRouter). */
export async function destroyRouter(tx: Tx, router: RouterRec): Promise<void> {
  const ports = await tx.q.query<{ port_id: string }>(
    "DELETE FROM router_interfaces WHERE router_id = $1 RETURNING port_id",
    [router.id],
  );
  for (const portId of new Set(ports.map((p) => p.port_id))) {
    await deletePort(asAdmin(tx), portId, { internal: true });
  }
  await removeGateway(tx, router.id);
  await tx.q.query("DELETE FROM routers WHERE id = $1", [router.id]);
  routerEvent(tx.out, "deleted", router);
}

/** Refuses a subnet the router already serves, or one overlapping a subnet it serves. */
async function checkNewInterfaceSubnet(tx: Tx, router: RouterRec, subnetId: string): Promise<void> {
  const subnet = await getSubnet(asAdmin(tx), subnetId);
  if (router.interfaces!.some((i) => i.subnetId === subnet.id)) {
    throw invalidInput(`Bad router request: Router already has a port on subnet ${subnet.id}.`);
  }
  const mine = parseCidr(subnet.cidr);
  for (const i of router.interfaces!) {
    const other = await getSubnet(asAdmin(tx), i.subnetId!);
    const theirs = parseCidr(other.cidr);
    if (overlaps({ first: mine.network, last: mine.last }, { first: theirs.network, last: theirs.last })) {
      throw invalidInput(
        `Bad router request: Cidr ${subnet.cidr} of subnet ${subnet.id} overlaps with cidr ${other.cidr} of subnet ${other.id}.`,
      );
    }
  }
}

function interfaceInfo(router: RouterRec, port: { id: string; networkId: string }, subnetIds: string[]) {
  return {
    routerId: router.id,
    portId: port.id,
    subnetId: subnetIds[0] ?? "",
    subnetIds,
    networkId: port.networkId,
    projectId: router.projectId,
  } satisfies Omit<RouterInterfaceInfo, "$typeName">;
}

export async function addRouterInterface(
  tx: Tx,
  req: Pick<AddRouterInterfaceRequest, "routerId" | "subnetId" | "portId">,
): Promise<{ router: RouterRec; info: ReturnType<typeof interfaceInfo> }> {
  if (req.subnetId && req.portId) {
    throw invalidInput("Bad router request: Cannot specify both subnet-id and port-id.");
  }
  if (!req.subnetId && !req.portId) {
    throw invalidInput("Bad router request: Either subnet_id or port_id must be specified.");
  }
  const router = await getRouter(tx, req.routerId, { forUpdate: true });
  let port: { id: string; networkId: string };
  let subnetIds: string[];
  if (req.subnetId) {
    const subnet = await getSubnet(tx, req.subnetId);
    if (!subnet.gatewayIp) {
      throw invalidInput(
        `Bad router request: Subnet ${subnet.id} for router interface must have a gateway IP.`,
      );
    }
    await checkNewInterfaceSubnet(tx, router, subnet.id);
    port = await createPort(
      asAdmin(tx),
      create(CreatePortRequestSchema, {
        networkId: subnet.networkId,
        projectId: router.projectId,
        fixedIps: [{ subnetId: subnet.id, ipAddress: subnet.gatewayIp }],
        deviceId: router.id,
        deviceOwner: ROUTER_INTERFACE_OWNER,
        ipAllocation: IpAllocation.IMMEDIATE,
      }),
      { allowGateway: true },
    );
    subnetIds = [subnet.id];
  } else {
    const given = await getPort(tx, req.portId, { forUpdate: true });
    if (given.deviceId) {
      throw conflict(
        `Unable to complete operation on port ${given.id} for network ${given.networkId}. Port already has an attached device ${given.deviceId}.`,
      );
    }
    if (!given.fixedIps.length) {
      throw invalidInput("Bad router request: Router port must have at least one fixed IP.");
    }
    subnetIds = [...new Set(given.fixedIps.map((f) => f.subnetId))];
    for (const s of subnetIds) await checkNewInterfaceSubnet(tx, router, s);
    await tx.q.query(
      `UPDATE ports SET device_id = $2, device_owner = $3, ${revisedSql("ports")} WHERE id = $1`,
      [given.id, router.id, ROUTER_INTERFACE_OWNER],
    );
    port = given;
    portEvent(tx, PortChange.UPDATED, await getPort(asAdmin(tx), given.id));
  }
  await tx.q.query(
    "INSERT INTO router_interfaces (router_id, subnet_id, port_id) SELECT $1, s, $3 FROM unnest($2::uuid[]) AS s",
    [router.id, subnetIds, port.id],
  );
  await tx.q.query(`UPDATE routers SET ${revisedSql("routers")} WHERE id = $1`, [router.id]);
  const updated = await getRouter(asAdmin(tx), router.id);
  routerEvent(tx.out, "updated", updated);
  return { router: updated, info: interfaceInfo(updated, port, subnetIds) };
}

export async function removeRouterInterface(
  tx: Tx,
  req: { routerId: string; subnetId: string; portId: string },
): Promise<{ router: RouterRec; info: ReturnType<typeof interfaceInfo> }> {
  if (!req.subnetId && !req.portId) {
    throw invalidInput("Bad router request: Either subnet_id or port_id must be specified.");
  }
  const router = await getRouter(tx, req.routerId, { forUpdate: true });
  const portId = req.portId.toLowerCase();
  const subnetId = req.subnetId.toLowerCase();
  let rows = router.interfaces!;
  if (req.portId) {
    rows = rows.filter((i) => i.portId === portId);
    if (!rows.length) throw notFound(`Router ${router.id} does not have an interface with id ${req.portId}`);
    if (req.subnetId && !rows.some((i) => i.subnetId === subnetId)) {
      throw invalidInput(`Subnet on port ${req.portId} does not match the requested subnet ${req.subnetId}.`);
    }
  } else {
    rows = rows.filter((i) => i.subnetId === subnetId);
    if (!rows.length) throw notFound(`Router ${router.id} has no interface on subnet ${req.subnetId}`);
  }
  const port = await getPort(asAdmin(tx), rows[0]!.portId!);
  // By port: the whole interface. By subnet: that subnet's part, and the port with its last part.
  const removed = req.portId ? rows.map((r) => r.subnetId!) : [subnetId];
  await tx.q.query(
    "DELETE FROM router_interfaces WHERE router_id = $1 AND port_id = $2 AND subnet_id = ANY($3::uuid[])",
    [router.id, port.id, removed],
  );
  const left = router.interfaces!.filter((i) => i.portId === port.id && !removed.includes(i.subnetId!));
  if (left.length) {
    await updatePort(
      asAdmin(tx),
      create(UpdatePortRequestSchema, {
        id: port.id,
        fixedIps: port.fixedIps.filter((f) => !removed.includes(f.subnetId ?? "")),
        updateFixedIps: true,
      }),
    );
  } else {
    await deletePort(asAdmin(tx), port.id, { internal: true });
  }
  await tx.q.query(`UPDATE routers SET ${revisedSql("routers")} WHERE id = $1`, [router.id]);
  const updated = await getRouter(asAdmin(tx), router.id);
  routerEvent(tx.out, "updated", updated);
  return { router: updated, info: interfaceInfo(updated, port, removed) };
}
