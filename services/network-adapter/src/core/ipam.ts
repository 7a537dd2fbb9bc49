// IPAM: the only code that chooses an address, and the only code that knows how free addresses
// are kept. The transactional path and the statements gathered per turn take addresses through
// the SQL built here, so the order addresses are handed out in is written once: subnets oldest
// first (created_at, id), in each the lowest free address, passing over those locked by
// allocations in flight.
//
// Free addresses: ip_free holds one row per free address of a subnet's allocation pools below the
// subnet's frontier (ip_free_frontier.next_ip); every pool address at or above it that no
// ip_allocations row holds is free without a row. The window below the frontier is kept at about
// WINDOW rows: filled when the subnet is made, refilled in the background as it empties
// (FreeListKeeper), and by an allocation that finds no unlocked row in it. A subnet therefore
// costs rows for the addresses handed out next, whatever its size (up to a /8 and beyond), and
// allocators still take rows with FOR UPDATE SKIP LOCKED, passing each other as before: the
// lowest free address is always in the window, since everything free below the frontier has its
// row. A subnet with no frontier row (made before migration 006) has all its free rows.
//
// Uniqueness is the primary key of ip_allocations (subnet_id, ip): two holders of one address
// cannot both commit, whatever the number of processes. Only when every remaining free address is
// locked by someone in flight does a caller wait for them, so an address freed by a rollback is
// still found and exhaustion is reported exactly once it is real.
//
// The frontier row orders what moves it against what reads it: a refill locks it FOR UPDATE and
// then reads the allocations in a statement of its own (a fresh snapshot); an explicit allocation
// or a release locks it FOR KEY SHARE before touching ip_free. So a refill never lists an address
// held by a transaction that has not committed yet, and a release never leaves an address with
// no row below the frontier.
import { IpAddressChangedSchema } from "@stratus/contracts/events/v1";
import { conflict, invalidInput, type Queryable, StratusError, Subjects } from "@stratus/runtime";
import { contains, formatCidr, formatIp, isValidHostAddress, parseCidr } from "../ipam/ipv4.js";
import type { Outbox, Tx } from "./context.js";

/** The rows a subnet's window is filled to (a subnet with fewer pool addresses is all in it). */
export const WINDOW = 1024;
/**
 * Below this many rows the window is refilled in the background: more than the allocations of
 * several processes in flight at once (4 statements of 16 each per process), so that the
 * per-turn statements find their rows, and seldom an allocation refills in its transaction.
 */
export const WINDOW_LOW = 512;

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

/** The event of an address taken (allocated) or given back, for the port that held it. */
function addressEvent(
  out: Outbox,
  allocated: boolean,
  held: { portId: string; subnetId: string; segmentId: string | null; ip: number },
): void {
  if (allocated) out.allocatedFrom.add(held.subnetId);
  out.add(allocated ? Subjects.ipAllocated : Subjects.ipReleased, IpAddressChangedSchema, {
    allocated,
    portId: held.portId,
    subnetId: held.subnetId,
    segmentId: held.segmentId ?? "",
    ipAddress: formatIp(held.ip),
  });
}

export function allocatedEvent(
  out: Outbox,
  portId: string,
  subnetId: string,
  segmentId: string | null,
  ip: number,
): void {
  addressEvent(out, true, { portId, subnetId, segmentId, ip });
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
  if (!rows.length && (await refillWindow(tx.q, sub.id, WINDOW)) > 0) {
    rows = await tx.q.query<{ ip: string }>(TAKE_SKIP_LOCKED, [sub.id, portId]);
  }
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
  await lockFrontiers(tx.q, [sub.id]);
  await tx.q.query("DELETE FROM ip_free WHERE subnet_id = $1 AND ip = $2", [sub.id, ip]);
  const rows = await tx.q.query(
    "INSERT INTO ip_allocations (subnet_id, ip, port_id) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING RETURNING ip",
    [sub.id, ip, portId],
  );
  if (!rows.length) throw conflict(`IP address ${text} already allocated in subnet ${sub.id}`);
  allocated(tx, portId, sub, ip);
}

/**
 * Releases the port's addresses (only those listed, when a list is given) back to the free lists
 * (below the frontier: as rows).
 */
export async function releasePortIps(
  tx: Tx,
  portId: string,
  only?: { subnetId: string; ip: number }[],
): Promise<{ subnetId: string; ip: number }[]> {
  if (only && !only.length) return [];
  const gone = await tx.q.query<{ subnet_id: string; ip: string; segment_id: string | null }>(
    `WITH gone AS (DELETE FROM ip_allocations a WHERE a.port_id = $1
         AND ($2::uuid[] IS NULL OR (a.subnet_id, a.ip) IN (SELECT * FROM unnest($2::uuid[], $3::bigint[])))
       RETURNING a.subnet_id, a.ip)
     SELECT g.subnet_id, g.ip, s.segment_id FROM gone g JOIN subnets s ON s.id = g.subnet_id`,
    [portId, only ? only.map((o) => o.subnetId) : null, only ? only.map((o) => o.ip) : null],
  );
  if (!gone.length) return [];
  await lockFrontiers(
    tx.q,
    gone.map((g) => g.subnet_id),
  );
  await tx.q.query(
    `INSERT INTO ip_free (subnet_id, ip)
     SELECT g.subnet_id, g.ip FROM unnest($1::uuid[], $2::bigint[]) AS g(subnet_id, ip)
     WHERE EXISTS (SELECT 1 FROM allocation_pools p WHERE p.subnet_id = g.subnet_id AND g.ip BETWEEN p.first_ip AND p.last_ip)
       AND NOT EXISTS (SELECT 1 FROM ip_free_frontier f WHERE f.subnet_id = g.subnet_id AND g.ip >= f.next_ip)
     ON CONFLICT DO NOTHING`,
    [gone.map((g) => g.subnet_id), gone.map((g) => Number(g.ip))],
  );
  for (const g of gone) {
    addressEvent(tx.out, false, { portId, subnetId: g.subnet_id, segmentId: g.segment_id, ip: Number(g.ip) });
  }
  return gone.map((g) => ({ subnetId: g.subnet_id, ip: Number(g.ip) }));
}

/** Forgets every address held in a subnet that is about to be deleted (with its free list). */
export async function releaseSubnetAllocations(tx: Tx, subnetId: string): Promise<void> {
  const gone = await tx.q.query<{ port_id: string; ip: string; segment_id: string | null }>(
    `WITH gone AS (DELETE FROM ip_allocations WHERE subnet_id = $1 RETURNING port_id, ip)
     SELECT g.port_id, g.ip, s.segment_id FROM gone g JOIN subnets s ON s.id = $1`,
    [subnetId],
  );
  for (const g of gone) {
    addressEvent(tx.out, false, { portId: g.port_id, subnetId, segmentId: g.segment_id, ip: Number(g.ip) });
  }
}

// ---- the window -----------------------------------------------------------------------------

/**
 * Locks the frontiers of these subnets FOR KEY SHARE (in subnet order), before a statement of its
 * own touches their ip_free rows: a refill in flight is waited for, and none starts until the
 * caller's transaction ends.
 */
async function lockFrontiers(q: Queryable, subnetIds: string[]): Promise<void> {
  await q.query(
    "SELECT 1 FROM ip_free_frontier WHERE subnet_id = ANY($1::uuid[]) ORDER BY subnet_id FOR KEY SHARE",
    [[...new Set(subnetIds)]],
  );
}

/**
 * Moves the frontier over the next `want` pool addresses (at most) and gives each that nobody
 * holds a row. The frontier row must be locked FOR UPDATE by the caller's transaction before
 * this statement starts (its snapshot then sees every allocation committed before the lock).
 */
const REFILL_SQL = `WITH f AS (SELECT next_ip FROM ip_free_frontier WHERE subnet_id = $1),
  candidates AS (
    SELECT g.ip FROM f JOIN allocation_pools p ON p.subnet_id = $1 AND p.last_ip >= f.next_ip
    CROSS JOIN LATERAL generate_series(greatest(p.first_ip, f.next_ip),
                                       least(p.last_ip, greatest(p.first_ip, f.next_ip) + $2::bigint - 1)) AS g(ip)
    ORDER BY g.ip LIMIT $2::bigint),
  added AS (
    INSERT INTO ip_free (subnet_id, ip)
    SELECT $1, c.ip FROM candidates c
    WHERE NOT EXISTS (SELECT 1 FROM ip_allocations a WHERE a.subnet_id = $1 AND a.ip = c.ip)
    ON CONFLICT DO NOTHING RETURNING ip),
  moved AS (
    UPDATE ip_free_frontier SET next_ip = (SELECT max(ip) + 1 FROM candidates)
    WHERE subnet_id = $1 AND EXISTS (SELECT 1 FROM candidates) RETURNING next_ip)
  SELECT (SELECT count(*) FROM added) AS added, (SELECT count(*) FROM candidates) AS passed`;

/**
 * Adds up to `want` free addresses from beyond the subnet's frontier to its window, in the
 * caller's transaction (which then holds the frontier until it ends); returns how many were
 * added (0: nothing free is left beyond the frontier, or the subnet has none).
 */
export async function refillWindow(q: Queryable, subnetId: string, want: number): Promise<number> {
  const [frontier] = await q.query("SELECT next_ip FROM ip_free_frontier WHERE subnet_id = $1 FOR UPDATE", [
    subnetId,
  ]);
  if (!frontier) return 0;
  let added = 0;
  while (added < want) {
    const [row] = await q.query<{ added: string; passed: string }>(REFILL_SQL, [subnetId, want - added]);
    added += Number(row!.added);
    if (Number(row!.passed) === 0) break;
  }
  return added;
}

/**
 * Makes the subnet's free list anew from its allocation pools (a new subnet, or new pools): the
 * frontier at the first pool address, then the window filled; addresses held stay held.
 */
export async function resetFreeList(tx: Tx, subnetId: string): Promise<void> {
  await tx.q.query("SELECT 1 FROM ip_free_frontier WHERE subnet_id = $1 FOR UPDATE", [subnetId]);
  await tx.q.query("DELETE FROM ip_free WHERE subnet_id = $1", [subnetId]);
  await tx.q.query(
    `INSERT INTO ip_free_frontier (subnet_id, next_ip)
     SELECT $1, coalesce(min(first_ip), 0) FROM allocation_pools WHERE subnet_id = $1
     ON CONFLICT (subnet_id) DO UPDATE SET next_ip = EXCLUDED.next_ip`,
    [subnetId],
  );
  await refillWindow(tx.q, subnetId, WINDOW);
}

/**
 * How full the subnet's window is, counted up to WINDOW_LOW rows, and whether any pool address
 * lies beyond its frontier (else there is nothing to refill from).
 */
export async function windowLevel(
  q: Queryable,
  subnetId: string,
): Promise<{ rows: number; beyond: boolean }> {
  const [row] = await q.query<{ n: string; beyond: boolean }>(
    `SELECT (SELECT count(*) FROM (SELECT 1 FROM ip_free WHERE subnet_id = $1 LIMIT $2) w) AS n,
       EXISTS (SELECT 1 FROM ip_free_frontier f JOIN allocation_pools p ON p.subnet_id = f.subnet_id
               WHERE f.subnet_id = $1 AND p.last_ip >= f.next_ip) AS beyond`,
    [subnetId, WINDOW_LOW],
  );
  return { rows: Number(row?.n ?? 0), beyond: Boolean(row?.beyond) };
}
