// Subnets: an IPv4 block of a network (bound to one of its segments on a routed network), its
// gateway and allocation pools, whose addresses IPAM hands out (ipam.ts).
import { randomUUID } from "node:crypto";
import type { AllocationPool, CreateSubnetRequest, UpdateSubnetRequest } from "@stratus/contracts/network/v1";
import { conflict, invalidInput, notFound } from "@stratus/runtime";
import {
  type Cidr,
  defaultGateway,
  defaultPools,
  formatCidr,
  isValidHostAddress,
  parseCidr,
  parseIp,
  type Range,
  validatePools,
} from "../ipam/ipv4.js";
import { owningProject, type Tx } from "./context.js";
import { checkId } from "./ids.js";
import { forgetFreeAddresses, freePoolAddresses, MIN_PREFIXLEN } from "./ipam.js";
import { loadSubnets, type SubnetRec } from "./model.js";
import { getOwnNetwork, visibleNetworkSql } from "./network-access.js";
import { cidrFromPool } from "./subnet-pools.js";

export async function getSubnet(tx: Tx, id: string): Promise<SubnetRec> {
  const sid = checkId(id, "Subnet");
  const vis = visibleNetworkSql(tx, "n", 2);
  const [sub] = await loadSubnets(
    tx.q,
    `s.id = $1 AND s.network_id IN (SELECT id FROM networks n WHERE ${vis.sql})`,
    [sid, ...vis.params],
  );
  if (!sub) throw notFound(`Subnet ${id} could not be found`);
  return sub;
}

export async function listSubnets(
  tx: Tx,
  f: { networkId: string; segmentId: string; projectId: string },
): Promise<SubnetRec[]> {
  const vis = visibleNetworkSql(tx, "n", 1);
  const params: unknown[] = [...vis.params];
  const where = [`s.network_id IN (SELECT id FROM networks n WHERE ${vis.sql})`];
  const add = (col: string, v: string) => {
    params.push(v);
    where.push(`s.${col}::text = $${params.length}`);
  };
  if (f.networkId) add("network_id", f.networkId.toLowerCase());
  if (f.segmentId) add("segment_id", f.segmentId.toLowerCase());
  if (f.projectId) add("project_id", f.projectId);
  return loadSubnets(tx.q, where.join(" AND "), params);
}

/** Writes pools and fills the free list (every pool address not already held). */
async function writePools(tx: Tx, subnetId: string, pools: Range[]): Promise<void> {
  for (const p of pools) {
    await tx.q.query("INSERT INTO allocation_pools (subnet_id, first_ip, last_ip) VALUES ($1, $2, $3)", [
      subnetId,
      p.first,
      p.last,
    ]);
    await freePoolAddresses(tx, subnetId, p);
  }
}

function poolsIn(pools: AllocationPool[]): Range[] {
  return pools.map((p) => ({ first: parseIp(p.start), last: parseIp(p.end) }));
}

export async function createSubnet(tx: Tx, req: CreateSubnetRequest): Promise<SubnetRec> {
  const net = await getOwnNetwork(tx, req.networkId, { forUpdate: true });
  const project = owningProject(req.projectId || net.projectId, tx.caller);
  if (req.ipVersion && req.ipVersion !== 4) throw invalidInput("only IPv4 subnets are supported");
  // Segment rules: all of a network's subnets are bound to segments, or none is.
  let segmentId: string | null = null;
  if (req.segmentId) {
    const seg = net.segments!.find((s) => s.id === req.segmentId.toLowerCase());
    if (!seg) throw invalidInput(`Segment ${req.segmentId} does not belong to network ${net.id}`);
    segmentId = seg.id!;
  }
  const existing = await tx.q.query<{
    segment_id: string | null;
    net_first: string;
    net_last: string;
    cidr: string;
  }>("SELECT segment_id, net_first, net_last, cidr FROM subnets WHERE network_id = $1", [net.id]);
  if (existing.length && existing.some((s) => (s.segment_id === null) !== (segmentId === null))) {
    throw invalidInput(
      `The subnets of network ${net.id} must be all associated with segments or none of them`,
    );
  }
  if (!segmentId && net.segments!.length > 1) {
    throw invalidInput(`Network ${net.id} has several segments: a subnet on it needs a segment_id`);
  }
  let cidr: Cidr;
  let poolId: string | null = null;
  if (req.cidr) {
    if (req.subnetpoolId) throw invalidInput("give either a cidr or a subnetpool_id, not both");
    cidr = parseCidr(req.cidr);
  } else if (req.subnetpoolId) {
    ({ cidr, poolId } = await cidrFromPool(tx, req.subnetpoolId, req.prefixlen));
  } else {
    throw invalidInput("a subnet needs a cidr or a subnetpool_id");
  }
  if (cidr.prefix < MIN_PREFIXLEN) {
    throw invalidInput(
      `subnets wider than /${MIN_PREFIXLEN} are not supported (asked for ${formatCidr(cidr)})`,
    );
  }
  for (const s of existing) {
    if (cidr.network <= Number(s.net_last) && Number(s.net_first) <= cidr.last) {
      throw invalidInput(
        `Requested subnet with cidr ${formatCidr(cidr)} overlaps with subnet ${s.cidr} on network ${net.id}`,
      );
    }
  }
  let gateway: number | null = null;
  if (!req.noGateway) {
    gateway = req.gatewayIp ? parseIp(req.gatewayIp) : defaultGateway(cidr);
    if (!isValidHostAddress(cidr, gateway)) {
      throw invalidInput(`Gateway ip ${req.gatewayIp} is not a valid host address of ${formatCidr(cidr)}`);
    }
  }
  const pools = req.allocationPools.length
    ? validatePools(cidr, gateway, poolsIn(req.allocationPools))
    : defaultPools(cidr, gateway);
  const id = randomUUID();
  await tx.q.query(
    `INSERT INTO subnets (id, network_id, segment_id, project_id, name, cidr, net_first, net_last, prefixlen, gateway_ip, enable_dhcp, subnetpool_id)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`,
    [
      id,
      net.id,
      segmentId,
      project,
      req.name,
      formatCidr(cidr),
      cidr.network,
      cidr.last,
      cidr.prefix,
      gateway,
      req.enableDhcp,
      poolId,
    ],
  );
  await writePools(tx, id, pools);
  if (segmentId) tx.out.segments.add(segmentId);
  return getSubnet(tx, id);
}

export async function updateSubnet(tx: Tx, req: UpdateSubnetRequest): Promise<SubnetRec> {
  const sub = await getSubnet(tx, req.id);
  await getOwnNetwork(tx, sub.networkId, { forUpdate: true });
  if (req.name !== undefined)
    await tx.q.query("UPDATE subnets SET name = $2 WHERE id = $1", [sub.id, req.name]);
  if (req.updateAllocationPools) {
    const cidr = parseCidr(sub.cidr);
    const gateway = sub.gatewayIp ? parseIp(sub.gatewayIp) : null;
    const pools = req.allocationPools.length
      ? validatePools(cidr, gateway, poolsIn(req.allocationPools))
      : defaultPools(cidr, gateway);
    await tx.q.query("DELETE FROM allocation_pools WHERE subnet_id = $1", [sub.id]);
    await forgetFreeAddresses(tx, sub.id);
    await writePools(tx, sub.id, pools);
    if (sub.segmentId) tx.out.segments.add(sub.segmentId);
  }
  return getSubnet(tx, sub.id);
}

export async function deleteSubnet(tx: Tx, id: string): Promise<void> {
  const sub = await getSubnet(tx, id);
  await getOwnNetwork(tx, sub.networkId, { forUpdate: true });
  const used = await tx.q.query<{ port_id: string }>(
    "SELECT port_id FROM ip_allocations WHERE subnet_id = $1 LIMIT 1",
    [sub.id],
  );
  if (used.length) {
    throw conflict(
      `Unable to complete operation on subnet ${sub.id}: One or more ports have an IP allocation from this subnet (port ${used[0]!.port_id}).`,
    );
  }
  const topo = await tx.q.query("SELECT 1 FROM auto_allocated_topologies WHERE subnet_id = $1", [sub.id]);
  if (topo.length)
    throw conflict(`Subnet ${sub.id} belongs to an auto-allocated topology; delete that instead`);
  await tx.q.query("DELETE FROM subnets WHERE id = $1", [sub.id]);
  if (sub.segmentId) tx.out.segments.add(sub.segmentId);
}
