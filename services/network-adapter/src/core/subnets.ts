// Subnets: an IPv4 block of a network (bound to one of its segments on a routed network), its
// gateway, allocation pools, DNS servers and host routes; IPAM (ipam.ts) hands out the pools'
// addresses. The routed-network rules are Neutron's: a network's subnets are all bound to
// segments or none is, to segments of that network; a subnet's segment does not change, except
// that the one subnet of a network of one segment may be bound to it (the network becomes
// routed). A network of several segments needs a segment per subnet (our rule: its hosts reach
// different segments).
import { randomUUID } from "node:crypto";
import type {
  CreateSubnetRequest,
  ListSubnetsRequest,
  UpdateSubnetRequest,
} from "@stratus/contracts/network/v1";
import { conflict, invalidInput, notFound } from "@stratus/runtime";
import {
  type Cidr,
  checkGatewayOutsidePools,
  formatCidr,
  parseCidr,
  parseIp,
  type Range,
} from "../ipam/ipv4.js";
import { owningProject, type Tx } from "./context.js";
import { checkId } from "./ids.js";
import { releaseSubnetAllocations, resetFreeList } from "./ipam.js";
import { SUBNET_LIST } from "./list-fields.js";
import { planList, SqlParams } from "./list-query.js";
import { loadSubnets, type NetworkRec, type SubnetRec } from "./model.js";
import { getOwnNetwork, visibleNetworkSql } from "./network-access.js";
import { subnetEvent } from "./resource-events.js";
import { keepsInUseSql, revisedSql } from "./rules.js";
import { cidrFromPool, defaultSubnetPoolId } from "./subnet-pools.js";
import { checkIpVersion, gatewayOf, hostRoutesOf, nameserversOf, poolsOf } from "./subnet-spec.js";

export async function getSubnet(tx: Tx, id: string): Promise<SubnetRec> {
  const sid = checkId(id, "Subnet");
  const vis = visibleNetworkSql(tx, "n", 2);
  const [sub] = await loadSubnets(
    tx.q,
    `s.id = $1 AND s.network_id IN (SELECT id FROM networks n WHERE ${vis.sql})`,
    [sid, ...vis.params],
  );
  if (!sub) throw notFound(`Subnet ${id} could not be found.`);
  return sub;
}

export async function listSubnets(
  tx: Tx,
  req: ListSubnetsRequest,
): Promise<{ items: SubnetRec[]; hasMore: boolean }> {
  const params = new SqlParams();
  const vis = visibleNetworkSql(tx, "n", params.next);
  params.addAll(vis.params);
  const where = [`s.network_id IN (SELECT id FROM networks n WHERE ${vis.sql})`];
  if (req.networkId) where.push(`s.network_id::text = ${params.add(req.networkId.toLowerCase())}`);
  if (req.segmentId) where.push(`s.segment_id::text = ${params.add(req.segmentId.toLowerCase())}`);
  if (req.projectId) where.push(`s.project_id = ${params.add(req.projectId)}`);
  const plan = await planList(tx.q, SUBNET_LIST, req.query, where, params);
  return plan.page(await loadSubnets(tx.q, plan.where, params.values, plan.order));
}

const allAssociatedOrNone = (networkId: string) =>
  invalidInput(
    `All of the subnets on network '${networkId}' must either all be associated with segments or all not associated with any segment.`,
  );

/** The segment a new subnet of `net` is bound to, by the routed-network rules. */
async function segmentOfNewSubnet(tx: Tx, net: NetworkRec, segmentId: string): Promise<string | null> {
  let segment: string | null = null;
  if (segmentId) {
    const seg = net.segments!.find((s) => s.id === segmentId.toLowerCase());
    if (!seg) throw invalidInput(`Segment ${segmentId} does not belong to network ${net.id}`);
    segment = seg.id!;
  }
  const [mixed] = await tx.q.query(
    "SELECT 1 FROM subnets WHERE network_id = $1 AND (segment_id IS NULL) <> $2 LIMIT 1",
    [net.id, segment === null],
  );
  if (mixed) throw allAssociatedOrNone(net.id);
  if (!segment && net.segments!.length > 1) {
    throw invalidInput(`Network ${net.id} has several segments: a subnet on it needs a segment_id`);
  }
  return segment;
}

/** The cidr a new subnet gets: the one asked for, or a block of a subnet pool. */
async function cidrOfNewSubnet(
  tx: Tx,
  req: CreateSubnetRequest,
): Promise<{ cidr: Cidr; poolId: string | null }> {
  if (req.useDefaultSubnetpool && req.subnetpoolId) {
    throw invalidInput(
      "Bad subnets request: subnetpool_id and use_default_subnetpool cannot both be specified.",
    );
  }
  const poolId = req.subnetpoolId || (req.useDefaultSubnetpool ? await defaultSubnetPoolId(tx, 4) : "");
  const asked = req.cidr ? parseCidr(req.cidr) : undefined;
  if (poolId) return cidrFromPool(tx, poolId, req.prefixlen, asked);
  if (!asked)
    throw invalidInput("Bad subnets request: a subnetpool must be specified in the absence of a cidr.");
  return { cidr: asked, poolId: null };
}

/** Writes the subnet's pools and makes its free list anew from them (held addresses stay held). */
async function writePools(tx: Tx, subnetId: string, pools: Range[]): Promise<void> {
  await tx.q.query("DELETE FROM allocation_pools WHERE subnet_id = $1", [subnetId]);
  await tx.q.query(
    `INSERT INTO allocation_pools (subnet_id, first_ip, last_ip)
     SELECT $1, f, l FROM unnest($2::bigint[], $3::bigint[]) AS p(f, l)`,
    [subnetId, pools.map((p) => p.first), pools.map((p) => p.last)],
  );
  await resetFreeList(tx, subnetId);
}

export async function createSubnet(tx: Tx, req: CreateSubnetRequest): Promise<SubnetRec> {
  checkIpVersion(req.ipVersion, [
    req.cidr,
    req.gatewayIp,
    ...req.allocationPools.flatMap((p) => [p.start, p.end]),
  ]);
  const net = await getOwnNetwork(tx, req.networkId, { forUpdate: true });
  const project = owningProject(req.projectId || net.projectId, tx.caller);
  const segmentId = await segmentOfNewSubnet(tx, net, req.segmentId);
  const dns = nameserversOf("new subnet", req.dnsNameservers);
  const routes = hostRoutesOf("new subnet", req.hostRoutes);
  const { cidr, poolId } = await cidrOfNewSubnet(tx, req);
  const [overlap] = await tx.q.query(
    "SELECT 1 FROM subnets WHERE network_id = $1 AND net_first <= $3 AND $2 <= net_last LIMIT 1",
    [net.id, cidr.network, cidr.last],
  );
  if (overlap) {
    throw invalidInput(
      `Invalid input for operation: Requested subnet with cidr: ${formatCidr(cidr)} for network: ${net.id} overlaps with another subnet.`,
    );
  }
  const gateway = gatewayOf(cidr, req.gatewayIp, req.noGateway);
  const pools = poolsOf(cidr, gateway, req.allocationPools);
  const id = randomUUID();
  await tx.q.query(
    `INSERT INTO subnets (id, network_id, segment_id, project_id, name, description, cidr, net_first, net_last,
       prefixlen, gateway_ip, enable_dhcp, subnetpool_id, dns_nameservers, host_routes)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)`,
    [
      id,
      net.id,
      segmentId,
      project,
      req.name,
      req.description,
      formatCidr(cidr),
      cidr.network,
      cidr.last,
      cidr.prefix,
      gateway,
      req.enableDhcp,
      poolId,
      dns,
      JSON.stringify(routes),
    ],
  );
  await writePools(tx, id, pools);
  if (segmentId) tx.out.segments.add(segmentId);
  const sub = await getSubnet(tx, id);
  subnetEvent(tx.out, "created", sub);
  return sub;
}

/**
 * The segment a subnet may be bound to by an update: the same, or (Neutron's migration to a routed
 * network) the network's one segment when the subnet is the network's only one and has none.
 */
async function segmentUpdate(
  tx: Tx,
  sub: SubnetRec,
  net: NetworkRec,
  wanted: string,
): Promise<string | null> {
  const segmentId = wanted.toLowerCase();
  if (segmentId === sub.segmentId) return null;
  if (sub.segmentId) {
    throw invalidInput(
      "A subnet that is already associated with a segment cannot have its segment association changed.",
    );
  }
  const [others] = await tx.q.query("SELECT 1 FROM subnets WHERE network_id = $1 AND id <> $2 LIMIT 1", [
    net.id,
    sub.id,
  ]);
  if (others) throw allAssociatedOrNone(net.id);
  if (net.segments!.length > 1) {
    throw invalidInput(
      `The network '${net.id}' has multiple segments, it is only possible to associate an existing subnet with a segment on networks with a single segment.`,
    );
  }
  if (!net.segments!.some((s) => s.id === segmentId)) {
    throw invalidInput(
      `The subnet's network id, '${net.id}', doesn't match the network_id of segment '${wanted}'`,
    );
  }
  return segmentId;
}

export async function updateSubnet(tx: Tx, req: UpdateSubnetRequest): Promise<SubnetRec> {
  const sub = await getSubnet(tx, req.id);
  const net = await getOwnNetwork(tx, sub.networkId, { forUpdate: true });
  await tx.q.query("SELECT 1 FROM subnets WHERE id = $1 FOR UPDATE", [sub.id]);
  checkIpVersion(0, [req.gatewayIp, ...req.allocationPools.flatMap((p) => [p.start, p.end])]);
  const cidr = parseCidr(sub.cidr);
  const oldGateway = sub.gatewayIp ? parseIp(sub.gatewayIp) : null;
  const gateway = req.updateGatewayIp ? gatewayOf(cidr, req.gatewayIp, !req.gatewayIp) : oldGateway;
  const pools = req.updateAllocationPools ? poolsOf(cidr, gateway, req.allocationPools) : undefined;
  if (req.updateGatewayIp && !pools) {
    checkGatewayOutsidePools(
      gateway,
      (sub.allocationPools ?? []).map((p) => ({ first: parseIp(p.start ?? ""), last: parseIp(p.end ?? "") })),
    );
  }
  const dns = req.updateDnsNameservers ? nameserversOf(sub.id, req.dnsNameservers) : null;
  const routes = req.updateHostRoutes ? hostRoutesOf(sub.id, req.hostRoutes) : null;
  const segment = req.segmentId !== undefined ? await segmentUpdate(tx, sub, net, req.segmentId) : null;
  await tx.q.query(
    `UPDATE subnets SET name = COALESCE($2, name), description = COALESCE($3, description),
       gateway_ip = CASE WHEN $4 THEN $5::bigint ELSE gateway_ip END,
       dns_nameservers = COALESCE($6, dns_nameservers), host_routes = COALESCE($7::jsonb, host_routes),
       enable_dhcp = COALESCE($8, enable_dhcp), segment_id = COALESCE($9::uuid, segment_id), ${revisedSql("subnets")}
     WHERE id = $1`,
    [
      sub.id,
      req.name ?? null,
      req.description ?? null,
      req.updateGatewayIp,
      gateway,
      dns,
      routes === null ? null : JSON.stringify(routes),
      req.enableDhcp ?? null,
      segment,
    ],
  );
  if (pools) await writePools(tx, sub.id, pools);
  const segmentNow = segment ?? sub.segmentId;
  if (segmentNow && (pools || segment)) tx.out.segments.add(segmentNow);
  const updated = await getSubnet(tx, sub.id);
  subnetEvent(tx.out, "updated", updated);
  return updated;
}

/**
 * Deletes a subnet; refused while a port other than the network's own holds an address of it
 * (Neutron's SubnetInUse) or while it belongs to an auto-allocated topology. The network's own
 * ports (DHCP) lose their address on it.
 */
export async function deleteSubnet(tx: Tx, id: string): Promise<void> {
  const sub = await getSubnet(tx, id);
  await getOwnNetwork(tx, sub.networkId, { forUpdate: true });
  const [used] = await tx.q.query(
    `SELECT 1 FROM ip_allocations a JOIN ports p ON p.id = a.port_id
     WHERE a.subnet_id = $1 AND ${keepsInUseSql("p")} LIMIT 1`,
    [sub.id],
  );
  if (used) {
    throw conflict(
      `Unable to complete operation on subnet ${sub.id}: One or more ports have an IP allocation from this subnet.`,
    );
  }
  const topo = await tx.q.query("SELECT 1 FROM auto_allocated_topologies WHERE subnet_id = $1", [sub.id]);
  if (topo.length)
    throw conflict(`Subnet ${sub.id} belongs to an auto-allocated topology; delete that instead`);
  // What is left are the addresses of the network's own ports (the check above).
  await releaseSubnetAllocations(tx, sub.id);
  await tx.q.query("DELETE FROM subnets WHERE id = $1", [sub.id]);
  if (sub.segmentId) tx.out.segments.add(sub.segmentId);
  subnetEvent(tx.out, "deleted", sub);
}
