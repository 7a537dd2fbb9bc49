// Networks, segments, subnets and subnet pools.
import { randomUUID } from "node:crypto";
import { NetworkChangedSchema } from "@stratus/contracts/events/v1";
import type {
  AllocationPool,
  CreateNetworkRequest,
  CreateSubnetRequest,
  ListNetworksRequest,
  Segment,
  SubnetPool,
  UpdateNetworkRequest,
  UpdateSubnetRequest,
} from "@stratus/contracts/network/v1";
import { conflict, invalidInput, notFound, StratusError, Subjects } from "@stratus/runtime";
import {
  type Cidr,
  defaultGateway,
  defaultPools,
  firstFreeBlock,
  formatCidr,
  isValidHostAddress,
  parseCidr,
  parseIp,
  type Range,
  validatePools,
} from "../ipam/ipv4.js";
import { isUniqueViolation, owningProject, type Tx } from "./context.js";
import type { SubnetRow } from "./ipam.js";
import {
  loadNetworks,
  loadSubnets,
  type NetworkRec,
  type PoolRec,
  poolOut,
  type SegmentRec,
  type SubnetRec,
  segmentOut,
} from "./model.js";

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Ids are uuids; anything else simply does not exist (and must not reach SQL as a cast error). */
export function isUuid(id: string): boolean {
  return UUID.test(id);
}

export function checkId(id: string, what: string): string {
  if (!UUID.test(id)) throw notFound(`${what} ${id || "(empty id)"} could not be found`);
  return id.toLowerCase();
}

/** The largest IPv4 subnet we keep a free list for (a /16: 65,534 addresses). */
export const MIN_PREFIXLEN = 16;

const NETWORK_TYPES = new Set(["flat", "vlan", "vxlan", "geneve"]);

// ---- networks -------------------------------------------------------------------------------

export function networkVisibleSql(tx: Tx, alias = "n", param = 1): { sql: string; params: unknown[] } {
  if (tx.caller.isAdmin) return { sql: "true", params: [] };
  return {
    sql: `(${alias}.project_id = $${param} OR ${alias}.shared OR ${alias}.router_external)`,
    params: [tx.caller.projectId],
  };
}

export async function getNetwork(
  tx: Tx,
  id: string,
  opts: { forUpdate?: boolean } = {},
): Promise<NetworkRec> {
  const nid = checkId(id, "Network");
  if (opts.forUpdate) await tx.q.query("SELECT 1 FROM networks WHERE id = $1 FOR UPDATE", [nid]);
  const vis = networkVisibleSql(tx, "n", 2);
  const [net] = await loadNetworks(tx.q, `n.id = $1 AND ${vis.sql}`, [nid, ...vis.params]);
  if (!net) throw notFound(`Network ${id} could not be found`);
  return net;
}

export interface NetworkBrief {
  id: string;
  projectId: string;
  shared: boolean;
  routed: boolean;
  /** Its subnets (ipam rows), in creation order. */
  subnets: SubnetRow[];
}

/** What port creation needs of a network and its subnets, in one query (the hot path of IPAM). */
/**
 * SQL: the network `id` (an SQL expression) is routed, as getNetworkBrief decides it: more than
 * one segment, or a subnet bound to a segment.
 */
export function routedNetworkSql(id: string): string {
  return `((SELECT count(*) FROM segments rs WHERE rs.network_id = ${id}) > 1
    OR EXISTS (SELECT 1 FROM subnets rsn WHERE rsn.network_id = ${id} AND rsn.segment_id IS NOT NULL))`;
}

export async function getNetworkBrief(tx: Tx, id: string): Promise<NetworkBrief> {
  const nid = checkId(id, "Network");
  const vis = networkVisibleSql(tx, "n", 2);
  const [row] = await tx.q.query<{
    id: string;
    project_id: string;
    shared: boolean;
    segments: string;
    subnets: unknown;
  }>(
    `SELECT n.id, n.project_id, n.shared,
       (SELECT count(*) FROM segments s WHERE s.network_id = n.id) AS segments,
       (SELECT coalesce(json_agg(json_build_object('id', sn.id, 'network_id', sn.network_id, 'segment_id', sn.segment_id,
                 'cidr', sn.cidr, 'gateway_ip', sn.gateway_ip) ORDER BY sn.created_at, sn.id), '[]'::json)
          FROM subnets sn WHERE sn.network_id = n.id) AS subnets
     FROM networks n WHERE n.id = $1 AND ${vis.sql}`,
    [nid, ...vis.params],
  );
  if (!row) throw notFound(`Network ${id} could not be found`);
  const subnets = (typeof row.subnets === "string" ? JSON.parse(row.subnets) : row.subnets) as SubnetRow[];
  return {
    id: row.id,
    projectId: row.project_id,
    shared: row.shared,
    routed: Number(row.segments) > 1 || subnets.some((sn) => sn.segment_id),
    subnets,
  };
}

/** A network the caller may change (its own, or any for admins). */
export async function getOwnNetwork(
  tx: Tx,
  id: string,
  opts: { forUpdate?: boolean } = {},
): Promise<NetworkRec> {
  const net = await getNetwork(tx, id, opts);
  if (!tx.caller.isAdmin && net.projectId !== tx.caller.projectId) {
    throw new StratusError("forbidden", `Network ${id} belongs to another project`);
  }
  return net;
}

function checkSegmentSpec(s: Pick<Segment, "networkType" | "physicalNetwork" | "segmentationId">): void {
  if (!NETWORK_TYPES.has(s.networkType)) {
    throw invalidInput(`network_type '${s.networkType}' is not one of flat, vlan, vxlan, geneve`);
  }
  if ((s.networkType === "flat" || s.networkType === "vlan") && !s.physicalNetwork) {
    throw invalidInput(`a ${s.networkType} segment needs a physical_network`);
  }
  if ((s.networkType === "vxlan" || s.networkType === "geneve") && s.physicalNetwork) {
    throw invalidInput(`a ${s.networkType} segment has no physical_network`);
  }
  if (s.networkType === "vlan" && (s.segmentationId < 1 || s.segmentationId > 4094)) {
    throw invalidInput(`vlan segmentation_id ${s.segmentationId} is outside 1..4094`);
  }
  if (s.networkType === "flat" && s.segmentationId)
    throw invalidInput("a flat segment has no segmentation_id");
}

async function insertSegment(
  tx: Tx,
  networkId: string,
  s: Pick<Segment, "name" | "networkType" | "physicalNetwork" | "segmentationId">,
): Promise<SegmentRec> {
  checkSegmentSpec(s);
  let segmentationId = s.segmentationId;
  if ((s.networkType === "vxlan" || s.networkType === "geneve") && !segmentationId) {
    const [row] = await tx.q.query<{ v: string }>("SELECT nextval('tunnel_ids') AS v");
    segmentationId = Number(row!.v);
  }
  const id = randomUUID();
  try {
    const [row] = await tx.q.query(
      `INSERT INTO segments (id, network_id, name, network_type, physical_network, segmentation_id)
       VALUES ($1, $2, $3, $4, $5, $6) RETURNING *`,
      [id, networkId, s.name, s.networkType, s.physicalNetwork, segmentationId],
    );
    return segmentOut(row!);
  } catch (err) {
    if (isUniqueViolation(err)) {
      throw conflict(
        `${s.networkType} segment ${s.physicalNetwork}${segmentationId ? `:${segmentationId}` : ""} is already in use`,
      );
    }
    throw err;
  }
}

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
  const vis = networkVisibleSql(tx, "n", 1);
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

// ---- segments -------------------------------------------------------------------------------

export async function getSegment(tx: Tx, id: string): Promise<SegmentRec> {
  const sid = checkId(id, "Segment");
  const [row] = await tx.q.query("SELECT * FROM segments WHERE id = $1", [sid]);
  if (!row) throw notFound(`Segment ${id} could not be found`);
  await getNetwork(tx, String(row.network_id)); // visibility
  return segmentOut(row);
}

export async function createSegment(tx: Tx, s: Segment): Promise<SegmentRec> {
  if (!tx.caller.isAdmin) throw new StratusError("forbidden", "segments are admin-only");
  const net = await getNetwork(tx, s.networkId, { forUpdate: true });
  const seg = await insertSegment(tx, net.id, s);
  if (seg.physicalNetwork) tx.out.segments.add(seg.id);
  return seg;
}

export async function listSegments(tx: Tx, networkId: string, physnet: string): Promise<SegmentRec[]> {
  const params: unknown[] = [];
  const where = ["true"];
  if (networkId) {
    params.push((await getNetwork(tx, networkId)).id);
    where.push(`network_id = $${params.length}`);
  } else if (!tx.caller.isAdmin) {
    const vis = networkVisibleSql(tx, "n", params.length + 1);
    params.push(...vis.params);
    where.push(`network_id IN (SELECT id FROM networks n WHERE ${vis.sql})`);
  }
  if (physnet) {
    params.push(physnet);
    where.push(`physical_network = $${params.length}`);
  }
  const rows = await tx.q.query(
    `SELECT * FROM segments WHERE ${where.join(" AND ")} ORDER BY created_at, id`,
    params,
  );
  return rows.map(segmentOut);
}

export async function deleteSegment(tx: Tx, id: string): Promise<void> {
  if (!tx.caller.isAdmin) throw new StratusError("forbidden", "segments are admin-only");
  const seg = await getSegment(tx, id);
  await tx.q.query("SELECT 1 FROM networks WHERE id = $1 FOR UPDATE", [seg.networkId]);
  const subs = await tx.q.query("SELECT id FROM subnets WHERE segment_id = $1", [seg.id]);
  if (subs.length) {
    throw conflict(
      `Segment '${seg.id}' cannot be deleted: The segment is still associated with subnet(s) ${subs.map((s) => String(s.id)).join(", ")}.`,
    );
  }
  const bound = await tx.q.query("SELECT id FROM ports WHERE binding_segment_id = $1 LIMIT 1", [seg.id]);
  if (bound.length)
    throw conflict(`Segment '${seg.id}' cannot be deleted: port ${String(bound[0]!.id)} is bound on it.`);
  await tx.q.query("DELETE FROM segments WHERE id = $1", [seg.id]);
  tx.out.removedSegments.add(seg.id);
}

// ---- subnet pools ---------------------------------------------------------------------------

export async function createSubnetPool(tx: Tx, p: SubnetPool): Promise<PoolRec> {
  const project = owningProject(p.projectId, tx.caller);
  if (!tx.caller.isAdmin && (p.shared || p.isDefault)) {
    throw new StratusError("forbidden", "only an admin may create shared or default subnet pools");
  }
  if (p.ipVersion && p.ipVersion !== 4) throw invalidInput("only IPv4 subnet pools are supported");
  if (!p.prefixes.length) throw invalidInput("a subnet pool needs at least one prefix");
  const prefixes = p.prefixes.map(parseCidr);
  for (const [i, a] of prefixes.entries()) {
    for (const b of prefixes.slice(i + 1)) {
      if (a.network <= b.last && b.network <= a.last) {
        throw invalidInput(`prefixes ${formatCidr(a)} and ${formatCidr(b)} overlap`);
      }
    }
  }
  const widest = Math.min(...prefixes.map((c) => c.prefix));
  const min = p.minPrefixlen || Math.max(widest, 8);
  const max = p.maxPrefixlen || 32;
  const def = p.defaultPrefixlen || min;
  if (min < widest) throw invalidInput(`min_prefixlen ${min} is wider than the pool's prefixes (/${widest})`);
  if (!(min <= def && def <= max && max <= 32)) {
    throw invalidInput(`prefix lengths must satisfy min (${min}) <= default (${def}) <= max (${max}) <= 32`);
  }
  const id = randomUUID();
  try {
    const [row] = await tx.q.query(
      `INSERT INTO subnet_pools (id, name, project_id, prefixes, default_prefixlen, min_prefixlen, max_prefixlen, is_default, shared, ip_version)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 4) RETURNING *`,
      [id, p.name, project, prefixes.map(formatCidr), def, min, max, p.isDefault, p.shared],
    );
    return poolOut(row!);
  } catch (err) {
    if (isUniqueViolation(err)) {
      throw invalidInput(
        "A default subnetpool for this IP family has already been set. Only one default may exist per IP family",
      );
    }
    throw err;
  }
}

function poolVisibleSql(tx: Tx, param: number): { sql: string; params: unknown[] } {
  if (tx.caller.isAdmin) return { sql: "true", params: [] };
  return { sql: `(project_id = $${param} OR shared)`, params: [tx.caller.projectId] };
}

export async function getSubnetPool(
  tx: Tx,
  id: string,
  opts: { forUpdate?: boolean } = {},
): Promise<PoolRec> {
  const pid = checkId(id, "Subnet pool");
  const vis = poolVisibleSql(tx, 2);
  const [row] = await tx.q.query(
    `SELECT * FROM subnet_pools WHERE id = $1 AND ${vis.sql}${opts.forUpdate ? " FOR UPDATE" : ""}`,
    [pid, ...vis.params],
  );
  if (!row) throw notFound(`Subnet pool ${id} could not be found`);
  return poolOut(row);
}

export async function listSubnetPools(tx: Tx, isDefault: boolean | undefined): Promise<PoolRec[]> {
  const vis = poolVisibleSql(tx, 1);
  const params = [...vis.params];
  let where = vis.sql;
  if (isDefault !== undefined) {
    params.push(isDefault);
    where += ` AND is_default = $${params.length}`;
  }
  return (await tx.q.query(`SELECT * FROM subnet_pools WHERE ${where} ORDER BY created_at, id`, params)).map(
    poolOut,
  );
}

export async function deleteSubnetPool(tx: Tx, id: string): Promise<void> {
  const pool = await getSubnetPool(tx, id, { forUpdate: true });
  if (!tx.caller.isAdmin && pool.projectId !== tx.caller.projectId) {
    throw new StratusError("forbidden", `Subnet pool ${id} belongs to another project`);
  }
  const used = await tx.q.query("SELECT id FROM subnets WHERE subnetpool_id = $1 LIMIT 1", [pool.id]);
  if (used.length) throw conflict(`Subnet pool ${pool.id} is in use by subnet ${String(used[0]!.id)}`);
  await tx.q.query("DELETE FROM subnet_pools WHERE id = $1", [pool.id]);
}

/** Takes the first free block of the pool (the pool row is locked, so concurrent takers queue). */
async function cidrFromPool(
  tx: Tx,
  poolId: string,
  prefixlen: number,
): Promise<{ cidr: Cidr; poolId: string }> {
  const pool = await getSubnetPool(tx, poolId, { forUpdate: true });
  const want = prefixlen || pool.defaultPrefixlen!;
  if (want < pool.minPrefixlen! || want > pool.maxPrefixlen!) {
    throw invalidInput(
      `prefixlen ${want} is outside the pool's range ${pool.minPrefixlen}..${pool.maxPrefixlen}`,
    );
  }
  const taken = await tx.q.query<{ net_first: string; net_last: string }>(
    "SELECT net_first, net_last FROM subnets WHERE subnetpool_id = $1",
    [pool.id],
  );
  const block = firstFreeBlock(
    pool.prefixes!.map(parseCidr),
    want,
    taken.map((t) => ({ first: Number(t.net_first), last: Number(t.net_last) })),
  );
  if (!block) {
    throw new StratusError(
      "ip_exhausted",
      `Failed to allocate subnet: Insufficient prefix space to allocate subnet size /${want}.`,
    );
  }
  return { cidr: block, poolId: pool.id };
}

// ---- subnets --------------------------------------------------------------------------------

export async function getSubnet(tx: Tx, id: string): Promise<SubnetRec> {
  const sid = checkId(id, "Subnet");
  const vis = networkVisibleSql(tx, "n", 2);
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
  const vis = networkVisibleSql(tx, "n", 1);
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
    await tx.q.query(
      `INSERT INTO ip_free (subnet_id, ip)
       SELECT $1, g FROM generate_series($2::bigint, $3::bigint) g
       WHERE NOT EXISTS (SELECT 1 FROM ip_allocations a WHERE a.subnet_id = $1 AND a.ip = g)`,
      [subnetId, p.first, p.last],
    );
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
    await tx.q.query("DELETE FROM ip_free WHERE subnet_id = $1", [sub.id]);
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
