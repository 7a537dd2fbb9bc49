// Subnet pools: address space handed out as subnets (a default pool per IP family is what
// get-me-a-network draws a project's subnet from).
import { randomUUID } from "node:crypto";
import type { SubnetPool } from "@stratus/contracts/network/v1";
import { conflict, invalidInput, notFound, StratusError } from "@stratus/runtime";
import { type Cidr, firstFreeBlock, formatCidr, parseCidr } from "../ipam/ipv4.js";
import { isUniqueViolation, owningProject, type Tx } from "./context.js";
import { checkId } from "./ids.js";
import { type PoolRec, poolOut } from "./model.js";

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
export async function cidrFromPool(
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
