// IPAM: the only code that chooses an address.
//
// Uniqueness is the primary key of ip_allocations (subnet_id, ip): two holders of one address
// cannot both commit, whatever the number of processes. Automatic choices come from the subnet's
// free list (ip_free, the allocation pools minus what is held), taken with FOR UPDATE SKIP LOCKED
// so concurrent allocators pass each other instead of queueing or colliding; only when every
// remaining free address is locked by someone in flight does a caller wait for them, so an
// address freed by a rollback is still found and exhaustion is reported exactly once it is real.
import { IpAddressChangedSchema } from "@stratus/contracts/events/v1";
import { conflict, invalidInput, StratusError, Subjects } from "@stratus/runtime";
import { contains, formatCidr, formatIp, isValidHostAddress, parseCidr } from "../ipam/ipv4.js";
import type { Outbox, Tx } from "./context.js";

export interface SubnetRow {
  id: string;
  network_id: string;
  segment_id: string | null;
  cidr: string;
  gateway_ip: string | null;
}

export async function subnetRows(tx: Tx, where: string, params: unknown[]): Promise<SubnetRow[]> {
  return tx.q.query<SubnetRow & Record<string, unknown>>(
    `SELECT id, network_id, segment_id, cidr, gateway_ip FROM subnets WHERE ${where} ORDER BY created_at, id`,
    params,
  );
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

// Take a free address and record it as held, in one statement (one round trip).
const TAKE = (lock: string) => `
  WITH pick AS (SELECT ip FROM ip_free WHERE subnet_id = $1 ORDER BY ip LIMIT 1 FOR UPDATE ${lock}),
  taken AS (DELETE FROM ip_free f USING pick WHERE f.subnet_id = $1 AND f.ip = pick.ip RETURNING f.ip)
  INSERT INTO ip_allocations (subnet_id, ip, port_id) SELECT $1, ip, $2 FROM taken RETURNING ip`;
const TAKE_SKIP_LOCKED = TAKE("SKIP LOCKED");
const TAKE_WAITING = TAKE("");

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

/** One address from the first of the subnets that has room; ip_exhausted when none has. */
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

/** Releases the port's addresses (all, or those of the given subnets) back to the free lists. */
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
