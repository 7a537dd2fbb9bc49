// Subnet pools: address space handed out as subnets (a default pool per IP family is what
// get-me-a-network and use_default_subnetpool draw from). A pool's prefixes only grow; a subnet
// takes the first free block of the size asked for, or the block it names if that is free.
import { randomUUID } from "node:crypto";
import type {
  ListSubnetPoolsRequest,
  SubnetPool,
  UpdateSubnetPoolRequest,
} from "@stratus/contracts/network/v1";
import { conflict, invalidInput, notFound, StratusError } from "@stratus/runtime";
import { type Cidr, firstFreeBlock, formatCidr, overlaps, parseCidr } from "../ipam/ipv4.js";
import { owningProject, type Tx } from "./context.js";
import { checkId } from "./ids.js";
import { SUBNET_POOL_LIST } from "./list-fields.js";
import { planList, SqlParams } from "./list-query.js";
import { loadSubnetPools, type PoolRec } from "./model.js";
import { revisedSql } from "./rules.js";

interface PoolShape {
  prefixes: Cidr[];
  min: number;
  def: number;
  max: number;
}

/** Prefixes (IPv4, disjoint) and prefix lengths (min <= default <= max <= 32, min no wider than a prefix). */
function checkShape(prefixTexts: string[], min: number, def: number, max: number): PoolShape {
  if (!prefixTexts.length) throw invalidInput("Empty subnet pool prefix list.");
  if (prefixTexts.some((p) => p.includes(":"))) throw invalidInput("IPv6 subnet pools are not supported");
  const prefixes = prefixTexts.map(parseCidr);
  for (const [i, a] of prefixes.entries()) {
    for (const b of prefixes.slice(i + 1)) {
      if (overlaps({ first: a.network, last: a.last }, { first: b.network, last: b.last })) {
        throw invalidInput(`prefixes ${formatCidr(a)} and ${formatCidr(b)} overlap`);
      }
    }
  }
  const widest = Math.min(...prefixes.map((c) => c.prefix));
  if (min < widest) throw invalidInput(`min_prefixlen ${min} is wider than the pool's prefixes (/${widest})`);
  if (!(min <= def && def <= max && max <= 32)) {
    throw invalidInput(`prefix lengths must satisfy min (${min}) <= default (${def}) <= max (${max}) <= 32`);
  }
  return { prefixes, min, def, max };
}

/** One default pool per IP family: serialised, then checked (the unique index stays the judge). */
async function claimDefault(tx: Tx, poolId: string): Promise<void> {
  await tx.q.query("SELECT pg_advisory_xact_lock(hashtext('stratus.subnet_pool.default'))");
  const [other] = await tx.q.query(
    "SELECT 1 FROM subnet_pools WHERE is_default AND ip_version = 4 AND id <> $1",
    [poolId],
  );
  if (other) {
    throw invalidInput(
      "A default subnetpool for this IP family has already been set. Only one default may exist per IP family",
    );
  }
}

export async function createSubnetPool(tx: Tx, p: SubnetPool): Promise<PoolRec> {
  const project = owningProject(p.projectId, tx.caller);
  if (!tx.caller.isAdmin && (p.shared || p.isDefault)) {
    throw new StratusError("forbidden", "only an admin may create shared or default subnet pools");
  }
  if (p.ipVersion === 6) throw invalidInput("IPv6 subnet pools are not supported");
  if (p.ipVersion && p.ipVersion !== 4)
    throw invalidInput(`Invalid input for operation: ${p.ipVersion} is not in [4, 6].`);
  const widest = Math.min(32, ...p.prefixes.filter((t) => !t.includes(":")).map((t) => parseCidr(t).prefix));
  const min = p.minPrefixlen || Math.max(widest, 8);
  const shape = checkShape(p.prefixes, min, p.defaultPrefixlen || min, p.maxPrefixlen || 32);
  const id = randomUUID();
  if (p.isDefault) await claimDefault(tx, id);
  await tx.q.query(
    `INSERT INTO subnet_pools (id, name, description, project_id, prefixes, default_prefixlen, min_prefixlen,
       max_prefixlen, is_default, shared, ip_version)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 4)`,
    [
      id,
      p.name,
      p.description,
      project,
      shape.prefixes.map(formatCidr),
      shape.def,
      shape.min,
      shape.max,
      p.isDefault,
      p.shared,
    ],
  );
  return getSubnetPool(tx, id);
}

function poolVisibleSql(tx: Tx, params: SqlParams): string {
  if (tx.caller.isAdmin) return "true";
  return `(sp.project_id = ${params.add(tx.caller.projectId)} OR sp.shared)`;
}

export async function getSubnetPool(
  tx: Tx,
  id: string,
  opts: { forUpdate?: boolean } = {},
): Promise<PoolRec> {
  const pid = checkId(id, "Subnet pool");
  const params = new SqlParams();
  const where = `sp.id = ${params.add(pid)} AND ${poolVisibleSql(tx, params)}`;
  if (opts.forUpdate)
    await tx.q.query(`SELECT 1 FROM subnet_pools sp WHERE ${where} FOR UPDATE`, params.values);
  const [pool] = await loadSubnetPools(tx.q, where, params.values);
  if (!pool) throw notFound(`Subnet pool ${id} could not be found.`);
  return pool;
}

/** A pool the caller may change: its own, or any for an admin. */
async function getOwnSubnetPool(tx: Tx, id: string): Promise<PoolRec> {
  const pool = await getSubnetPool(tx, id, { forUpdate: true });
  if (!tx.caller.isAdmin && pool.projectId !== tx.caller.projectId) {
    throw new StratusError("forbidden", `Subnet pool ${id} belongs to another project`);
  }
  return pool;
}

export async function listSubnetPools(
  tx: Tx,
  req: ListSubnetPoolsRequest,
): Promise<{ items: PoolRec[]; hasMore: boolean }> {
  const params = new SqlParams();
  const where = [poolVisibleSql(tx, params)];
  if (req.isDefault !== undefined) where.push(`sp.is_default = ${params.add(req.isDefault)}`);
  const plan = await planList(tx.q, SUBNET_POOL_LIST, req.query, where, params);
  return plan.page(await loadSubnetPools(tx.q, plan.where, params.values, plan.order));
}

export async function updateSubnetPool(tx: Tx, req: UpdateSubnetPoolRequest): Promise<PoolRec> {
  const pool = await getOwnSubnetPool(tx, req.id);
  if (!tx.caller.isAdmin && (req.shared !== undefined || req.isDefault !== undefined)) {
    throw new StratusError("forbidden", "only an admin may change shared or is_default");
  }
  const prefixes = req.updatePrefixes ? req.prefixes : pool.prefixes!;
  const shape = checkShape(
    prefixes,
    req.minPrefixlen ?? pool.minPrefixlen!,
    req.defaultPrefixlen ?? pool.defaultPrefixlen!,
    req.maxPrefixlen ?? pool.maxPrefixlen!,
  );
  const covered = (old: Cidr) => shape.prefixes.some((c) => c.network <= old.network && old.last <= c.last);
  if (!pool.prefixes!.map(parseCidr).every(covered)) {
    throw invalidInput("Illegal update to prefixes: Existing prefixes must be a subset of the new prefixes.");
  }
  if (pool.shared && req.shared === false) {
    const [used] = await tx.q.query(
      "SELECT 1 FROM subnets WHERE subnetpool_id = $1 AND project_id <> $2 LIMIT 1",
      [pool.id, pool.projectId],
    );
    if (used) {
      throw conflict(`Unable to complete operation on subnet pool ${pool.id}. Other projects use it.`);
    }
  }
  if (req.isDefault && !pool.isDefault) await claimDefault(tx, pool.id);
  await tx.q.query(
    `UPDATE subnet_pools SET name = COALESCE($2, name), description = COALESCE($3, description), prefixes = $4,
       default_prefixlen = $5, min_prefixlen = $6, max_prefixlen = $7, is_default = COALESCE($8, is_default),
       shared = COALESCE($9, shared), ${revisedSql("subnet_pools")}
     WHERE id = $1`,
    [
      pool.id,
      req.name ?? null,
      req.description ?? null,
      shape.prefixes.map(formatCidr),
      shape.def,
      shape.min,
      shape.max,
      req.isDefault ?? null,
      req.shared ?? null,
    ],
  );
  return getSubnetPool(tx, pool.id);
}

export async function deleteSubnetPool(tx: Tx, id: string): Promise<void> {
  const pool = await getOwnSubnetPool(tx, id);
  const [used] = await tx.q.query<{ id: string }>("SELECT id FROM subnets WHERE subnetpool_id = $1 LIMIT 1", [
    pool.id,
  ]);
  if (used) {
    throw invalidInput(
      `Unable to delete subnet pool: Subnet pool has existing allocations (it is in use by subnet ${used.id}).`,
    );
  }
  await tx.q.query("DELETE FROM subnet_pools WHERE id = $1", [pool.id]);
}

/** The default pool of the IP family, or Neutron's refusal when there is none. */
export async function defaultSubnetPoolId(tx: Tx, ipVersion: number): Promise<string> {
  const [row] = await tx.q.query<{ id: string }>(
    "SELECT id FROM subnet_pools WHERE is_default AND ip_version = $1",
    [ipVersion],
  );
  if (!row) throw invalidInput(`Bad subnets request: No default subnetpool found for IPv${ipVersion}.`);
  return row.id;
}

/**
 * A block of the pool for a new subnet (the pool row is locked, so concurrent takers queue): the
 * cidr asked for if it lies in the pool and is free, else the first free block of the prefix
 * length asked for (the pool's default when none).
 */
export async function cidrFromPool(
  tx: Tx,
  poolId: string,
  prefixlen: number,
  asked?: Cidr,
): Promise<{ cidr: Cidr; poolId: string }> {
  const pool = await getSubnetPool(tx, poolId, { forUpdate: true });
  const want = asked?.prefix ?? (prefixlen || pool.defaultPrefixlen!);
  if (want < pool.minPrefixlen! || want > pool.maxPrefixlen!) {
    throw invalidInput(
      `prefixlen ${want} is outside the pool's range ${pool.minPrefixlen}..${pool.maxPrefixlen}`,
    );
  }
  const taken = (
    await tx.q.query<{ net_first: string; net_last: string }>(
      "SELECT net_first, net_last FROM subnets WHERE subnetpool_id = $1",
      [pool.id],
    )
  ).map((t) => ({ first: Number(t.net_first), last: Number(t.net_last) }));
  const prefixes = pool.prefixes!.map(parseCidr);
  if (asked) {
    const inside = prefixes.some((c) => c.network <= asked.network && asked.last <= c.last);
    const range = { first: asked.network, last: asked.last };
    if (!inside || taken.some((t) => overlaps(t, range))) {
      throw conflict(
        "Failed to allocate subnet: Cannot allocate requested subnet from the available set of prefixes.",
      );
    }
    return { cidr: asked, poolId: pool.id };
  }
  const block = firstFreeBlock(prefixes, want, taken);
  if (!block) {
    throw new StratusError(
      "ip_exhausted",
      `Failed to allocate subnet: Insufficient prefix space to allocate subnet size /${want}.`,
    );
  }
  return { cidr: block, poolId: pool.id };
}
