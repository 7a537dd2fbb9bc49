// IPv4 arithmetic for IPAM: addresses as unsigned integers, CIDRs, allocation pools (Neutron's
// rules: pools exclude the network, broadcast and gateway addresses; /31 and /32 use every address).
import { conflict, invalidInput } from "@stratus/runtime";

export interface Cidr {
  /** The network address as an integer. */
  network: number;
  prefix: number;
  /** Number of addresses in the block. */
  size: number;
  /** Last address of the block (the broadcast address for prefixes up to /30). */
  last: number;
}

export interface Range {
  first: number;
  last: number;
}

const OCTET = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)$/;

export function parseIp(text: string): number {
  const parts = text.trim().split(".");
  if (parts.length !== 4 || !parts.every((p) => OCTET.test(p))) {
    throw invalidInput(`'${text}' is not a valid IPv4 address`);
  }
  return parts.reduce((n, p) => n * 256 + Number(p), 0);
}

export function isIp(text: string): boolean {
  try {
    parseIp(text);
    return true;
  } catch {
    return false;
  }
}

export function formatIp(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join(".");
}

/** Parses "a.b.c.d/n"; host bits must be zero (as Neutron requires). */
export function parseCidr(text: string): Cidr {
  const m = /^([^/]+)\/(\d{1,2})$/.exec(text.trim());
  if (!m) throw invalidInput(`'${text}' is not a valid IPv4 CIDR`);
  const prefix = Number(m[2]);
  if (prefix > 32) throw invalidInput(`'${text}' is not a valid IPv4 CIDR: prefix length above 32`);
  const address = parseIp(m[1]!);
  const size = 2 ** (32 - prefix);
  const network = address - (address % size);
  if (network !== address) {
    throw invalidInput(`'${text}' has host bits set; did you mean ${formatIp(network)}/${prefix}?`);
  }
  return { network, prefix, size, last: network + size - 1 };
}

export function formatCidr(c: Pick<Cidr, "network" | "prefix">): string {
  return `${formatIp(c.network)}/${c.prefix}`;
}

export function cidrOf(network: number, prefix: number): Cidr {
  const size = 2 ** (32 - prefix);
  return { network, prefix, size, last: network + size - 1 };
}

export function contains(c: Cidr, ip: number): boolean {
  return ip >= c.network && ip <= c.last;
}

export function overlaps(a: Range, b: Range): boolean {
  return a.first <= b.last && b.first <= a.last;
}

/** Addresses a host may use: all but network and broadcast, except on /31 and /32. */
export function hostRange(c: Cidr): Range {
  if (c.prefix >= 31) return { first: c.network, last: c.last };
  return { first: c.network + 1, last: c.last - 1 };
}

export function isValidHostAddress(c: Cidr, ip: number): boolean {
  const r = hostRange(c);
  return ip >= r.first && ip <= r.last;
}

/** Neutron's default gateway: the first host address. */
export function defaultGateway(c: Cidr): number {
  return hostRange(c).first;
}

/** Removes one address from a set of ranges. */
function without(ranges: Range[], ip: number): Range[] {
  const out: Range[] = [];
  for (const r of ranges) {
    if (ip < r.first || ip > r.last) {
      out.push(r);
      continue;
    }
    if (r.first <= ip - 1) out.push({ first: r.first, last: ip - 1 });
    if (ip + 1 <= r.last) out.push({ first: ip + 1, last: r.last });
  }
  return out;
}

/** Default allocation pools: the host range minus the gateway. */
export function defaultPools(c: Cidr, gateway: number | null): Range[] {
  const base = [hostRange(c)];
  return gateway === null ? base : without(base, gateway);
}

export function poolSize(pools: Range[]): number {
  return pools.reduce((n, r) => n + (r.last - r.first + 1), 0);
}

/** A pool as Neutron writes it in messages: first-last. */
export function formatRange(r: Range): string {
  return `${formatIp(r.first)}-${formatIp(r.last)}`;
}

/**
 * Checks explicit pools against the subnet, with Neutron's kinds of refusal: start after end or
 * outside the host range is invalid_input, two pools overlapping or one holding the gateway a
 * conflict.
 * Returns them sorted.
 */
export function validatePools(c: Cidr, gateway: number | null, pools: Range[]): Range[] {
  const host = hostRange(c);
  const sorted = [...pools].sort((a, b) => a.first - b.first);
  for (const [i, p] of sorted.entries()) {
    const label = formatRange(p);
    if (p.first > p.last) throw invalidInput(`allocation pool ${label}: start is after end`);
    if (p.first < host.first || p.last > host.last) {
      throw invalidInput(`allocation pool ${label} is outside the usable addresses of ${formatCidr(c)}`);
    }
    const prev = sorted[i - 1];
    if (prev && overlaps(prev, p)) {
      throw conflict(
        `Found overlapping allocation pools: ${formatRange(prev)} ${label} for subnet ${formatCidr(c)}.`,
      );
    }
  }
  checkGatewayOutsidePools(gateway, sorted);
  return sorted;
}

/** The gateway may not be an address the pools hand out (Neutron's GatewayConflictWithAllocationPools). */
export function checkGatewayOutsidePools(gateway: number | null, pools: Range[]): void {
  if (gateway === null) return;
  const pool = pools.find((p) => gateway >= p.first && gateway <= p.last);
  if (pool)
    throw conflict(`gateway ip ${formatIp(gateway)} conflicts with allocation pool ${formatRange(pool)}.`);
}

/**
 * The first free block of the given prefix length inside `within` that overlaps none of `taken`
 * (subnet-pool allocation, Neutron's "first free block"), or null when there is no room.
 */
export function firstFreeBlock(within: Cidr[], prefix: number, taken: Range[]): Cidr | null {
  const size = 2 ** (32 - prefix);
  const busy = [...taken].sort((a, b) => a.first - b.first);
  for (const space of within) {
    if (space.prefix > prefix) continue;
    let candidate = space.network;
    while (candidate + size - 1 <= space.last) {
      const block = { first: candidate, last: candidate + size - 1 };
      const clash = busy.find((t) => overlaps(t, block));
      if (!clash) return cidrOf(candidate, prefix);
      // Jump past the clash, aligned to the block size.
      candidate = Math.ceil((clash.last + 1) / size) * size;
    }
  }
  return null;
}
