// IPAM: the only code that chooses an address, and the only code that knows how free addresses
// are kept (ip_free: one row per free address of a subnet's allocation pools). The transactional
// path and the statements gathered per turn take addresses through the SQL built here, so the
// order addresses are handed out in is written once: subnets oldest first (created_at, id), in
// each the lowest free address, passing over those locked by allocations in flight.
//
// Uniqueness is the primary key of ip_allocations (subnet_id, ip): two holders of one address
// cannot both commit, whatever the number of processes. Free addresses are taken with FOR UPDATE
// SKIP LOCKED, so concurrent allocators pass each other instead of queueing or colliding; only
// when every remaining free address is locked by someone in flight does a caller wait for them, so
// an address freed by a rollback is still found and exhaustion is reported exactly once it is real.
import { IpAddressChangedSchema } from "@stratus/contracts/events/v1";
import { conflict, invalidInput, StratusError, Subjects } from "@stratus/runtime";
import { contains, formatCidr, formatIp, isValidHostAddress, parseCidr, type Range } from "../ipam/ipv4.js";
import type { Outbox, Tx } from "./context.js";

/** The largest IPv4 subnet we keep a free list for (a /16: 65,534 addresses). */
export const MIN_PREFIXLEN = 16;

export interface SubnetRow {
  id: string;
  network_id: string;
  segment_id: string | null;
  cidr: string;
  gateway_ip: string | null;
}

/** SQL: the order subnets (alias `s`) are drawn from: the oldest first. */
const subnetOrderSql = (s: string) => `${s}.created_at, ${s}.id`;

/** The subnets that match `where`, in the order addresses are drawn from them. */
export async function subnetRows(tx: Tx, where: string, params: unknown[]): Promise<SubnetRow[]> {
  return tx.q.query<SubnetRow & Record<string, unknown>>(
    `SELECT id, network_id, segment_id, cidr, gateway_ip FROM subnets s WHERE ${where} ORDER BY ${subnetOrderSql("s")}`,
    params,
  );
}

/** SQL: the subnets of network `networkId` (an SQL expression) as a json array of SubnetRow, in draw order. */
export function networkSubnetsJsonSql(networkId: string): string {
  return `(SELECT coalesce(json_agg(json_build_object('id', sn.id, 'network_id', sn.network_id, 'segment_id', sn.segment_id,
                 'cidr', sn.cidr, 'gateway_ip', sn.gateway_ip) ORDER BY ${subnetOrderSql("sn")}), '[]'::json)
          FROM subnets sn WHERE sn.network_id = ${networkId})`;
}

/**
 * SQL query: the free addresses of subnet `subnet` (an SQL expression), lowest first, at most
 * `limit`, locked FOR UPDATE; with `skipLocked` passing over those that allocations in flight
 * hold, else waiting for them. Columns subnet_id, ip.
 */
function freeInSubnetSql(subnet: string, limit: string, opts: { skipLocked: boolean }): string {
  return `SELECT fr.subnet_id, fr.ip FROM ip_free fr WHERE fr.subnet_id = ${subnet}
                        ORDER BY fr.ip LIMIT ${limit} FOR UPDATE${opts.skipLocked ? " SKIP LOCKED" : ""}`;
}

/**
 * SQL query (a CTE's body) for statements that allocate for many callers at once: for each row
 * of `need` (columns key and c: c addresses wanted for that key), the free addresses it may take,
 * numbered rn = 1, 2, … in the order they are handed out (subnets oldest first, in each the
 * lowest free address), skipping those locked by allocations in flight; `subnetsOf(sn, key)` is
 * the SQL condition on subnet `sn` for the key (its network, its segment). At most c are read
 * (and locked until the statement's transaction ends) per subnet. Columns key, subnet_id,
 * segment_id, ip, rn.
 */
export function freeAddressesSql(need: string, subnetsOf: (sn: string, key: string) => string): string {
  return `SELECT ${need}.key, s.id AS subnet_id, s.segment_id, f.ip,
      row_number() OVER (PARTITION BY ${need}.key ORDER BY ${subnetOrderSql("s")}, f.ip) AS rn
    FROM ${need}
    CROSS JOIN LATERAL (SELECT sn.id, sn.segment_id, sn.created_at FROM subnets sn WHERE ${subnetsOf("sn", `${need}.key`)}) s
    CROSS JOIN LATERAL (${freeInSubnetSql("s.id", `${need}.c`, { skipLocked: true })}) f`;
}

/**
 * SQL: two CTEs, `taken` and `held`, that take the addresses of `picked` (a relation with
 * subnet_id and ip, locked by the statement) off the free list and record them as held by their
 * ports (`portId`, an SQL expression over `pk`, a row of picked). `held` returns subnet_id, ip and
 * port_id. An address that was not free any more is taken by nobody.
 */
export function takeAndHoldSql(picked: string, portId = "pk.port_id"): string {
  return `taken AS (DELETE FROM ip_free f USING ${picked} pk WHERE f.subnet_id = pk.subnet_id AND f.ip = pk.ip
    RETURNING f.subnet_id, f.ip),
  held AS (INSERT INTO ip_allocations (subnet_id, ip, port_id)
    SELECT taken.subnet_id, taken.ip, ${portId} FROM taken JOIN ${picked} pk ON pk.subnet_id = taken.subnet_id AND pk.ip = taken.ip
    RETURNING subnet_id, ip, port_id)`;
}

export function allocatedEvent(
  out: Outbox,
  portId: string,
  subnetId: string,
  segmentId: string | null,
  ip: number,
): void {
  out.add(Subjects.ipAllocated, IpAddressChangedSchema, {
    allocated: true,
    portId,
    subnetId,
    segmentId: segmentId ?? "",
    ipAddress: formatIp(ip),
  });
}

function allocated(tx: Tx, portId: string, sub: SubnetRow, ip: number): void {
  allocatedEvent(tx.out, portId, sub.id, sub.segment_id, ip);
}

// Take the subnet's next free address and record it as held, in one statement (one round trip).
const take = (skipLocked: boolean) =>
  `WITH pick AS (${freeInSubnetSql("$1::uuid", "1", { skipLocked })}),
  ${takeAndHoldSql("pick", "$2::uuid")}
  SELECT ip FROM held`;
const TAKE_SKIP_LOCKED = take(true);
const TAKE_WAITING = take(false);

/** One address from the subnet's pools for the port, or null when the subnet is exhausted. */
export async function allocateFromSubnet(tx: Tx, sub: SubnetRow, portId: string): Promise<number | null> {
  let rows = await tx.q.query<{ ip: string }>(TAKE_SKIP_LOCKED, [sub.id, portId]);
  if (!rows.length) {
    // Every free address left (if any) is being taken by someone in flight: wait for them, so
    // that one freed by a rollback is still found and exhaustion is only reported when real.
    const left = await tx.q.query("SELECT 1 FROM ip_free WHERE subnet_id = $1 LIMIT 1", [sub.id]);
    if (!left.length) return null;
    rows = await tx.q.query<{ ip: string }>(TAKE_WAITING, [sub.id, portId]);
    if (!rows.length) return null;
  }
  const ip = Number(rows[0]!.ip);
  allocated(tx, portId, sub, ip);
  return ip;
}

/** One address from the first of the subnets (in draw order) that has room; ip_exhausted when none has. */
export async function allocateFromAny(
  tx: Tx,
  subnets: SubnetRow[],
  portId: string,
  networkId: string,
): Promise<{ subnet: SubnetRow; ip: number }> {
  for (const sub of subnets) {
    const ip = await allocateFromSubnet(tx, sub, portId);
    if (ip !== null) return { subnet: sub, ip };
  }
  throw new StratusError("ip_exhausted", `No more IP addresses available on network ${networkId}.`);
}

/** An address asked for explicitly: honoured, or refused with the reason. */
export async function allocateSpecific(
  tx: Tx,
  sub: SubnetRow,
  ip: number,
  portId: string,
  opts: { allowGateway?: boolean } = {},
): Promise<void> {
  const cidr = parseCidr(sub.cidr);
  const text = formatIp(ip);
  if (!contains(cidr, ip))
    throw invalidInput(
      `IP address ${text} is not a valid IP for the specified subnet ${sub.id} (${formatCidr(cidr)})`,
    );
  if (!isValidHostAddress(cidr, ip))
    throw invalidInput(`IP address ${text} is the network or broadcast address of subnet ${sub.id}`);
  if (!opts.allowGateway && sub.gateway_ip !== null && Number(sub.gateway_ip) === ip) {
    throw conflict(`IP address ${text} is the gateway of subnet ${sub.id}`);
  }
  await tx.q.query("DELETE FROM ip_free WHERE subnet_id = $1 AND ip = $2", [sub.id, ip]);
  const rows = await tx.q.query(
    "INSERT INTO ip_allocations (subnet_id, ip, port_id) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING RETURNING ip",
    [sub.id, ip, portId],
  );
  if (!rows.length) throw conflict(`IP address ${text} already allocated in subnet ${sub.id}`);
  allocated(tx, portId, sub, ip);
}

/** Releases the port's addresses back to the free lists. */
export async function releasePortIps(tx: Tx, portId: string): Promise<{ subnetId: string; ip: number }[]> {
  const gone = await tx.q.query<{ subnet_id: string; ip: string; segment_id: string | null }>(
    `WITH gone AS (DELETE FROM ip_allocations WHERE port_id = $1 RETURNING subnet_id, ip)
     SELECT g.subnet_id, g.ip, s.segment_id FROM gone g JOIN subnets s ON s.id = g.subnet_id`,
    [portId],
  );
  for (const g of gone) {
    await tx.q.query(
      `INSERT INTO ip_free (subnet_id, ip)
       SELECT $1, $2 WHERE EXISTS (SELECT 1 FROM allocation_pools p WHERE p.subnet_id = $1 AND $2 BETWEEN p.first_ip AND p.last_ip)
       ON CONFLICT DO NOTHING`,
      [g.subnet_id, Number(g.ip)],
    );
    tx.out.add(Subjects.ipReleased, IpAddressChangedSchema, {
      allocated: false,
      portId,
      subnetId: g.subnet_id,
      segmentId: g.segment_id ?? "",
      ipAddress: formatIp(Number(g.ip)),
    });
  }
  return gone.map((g) => ({ subnetId: g.subnet_id, ip: Number(g.ip) }));
}

/** Makes the addresses of a new allocation pool free, except those already held. */
export async function freePoolAddresses(tx: Tx, subnetId: string, pool: Range): Promise<void> {
  await tx.q.query(
    `INSERT INTO ip_free (subnet_id, ip)
     SELECT $1, g FROM generate_series($2::bigint, $3::bigint) g
     WHERE NOT EXISTS (SELECT 1 FROM ip_allocations a WHERE a.subnet_id = $1 AND a.ip = g)`,
    [subnetId, pool.first, pool.last],
  );
}

/** Forgets the subnet's free addresses (its pools are about to be written anew). */
export async function forgetFreeAddresses(tx: Tx, subnetId: string): Promise<void> {
  await tx.q.query("DELETE FROM ip_free WHERE subnet_id = $1", [subnetId]);
}
