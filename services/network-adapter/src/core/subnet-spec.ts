// What a subnet request may ask for, judged before any SQL: the IP version (IPv4 only), the
// gateway, allocation pools, DNS name servers and host routes, with Neutron's refusals.
import type { AllocationPool, HostRoute } from "@stratus/contracts/network/v1";
import { invalidInput } from "@stratus/runtime";
import {
  type Cidr,
  defaultGateway,
  defaultPools,
  formatCidr,
  isIp,
  isValidHostAddress,
  parseCidr,
  parseIp,
  type Range,
  validatePools,
} from "../ipam/ipv4.js";

/** Neutron's max_dns_nameservers and max_subnet_host_routes. */
export const MAX_DNS_NAMESERVERS = 5;
export const MAX_HOST_ROUTES = 20;

/**
 * IPv6 is not supported: its addressing modes (SLAAC, DHCPv6), prefix delegation and EUI-64
 * addresses are more than an address chooser, and placement counts IPv4 addresses only.
 */
export function checkIpVersion(ipVersion: number, texts: string[]): void {
  if (ipVersion === 6 || texts.some((t) => t.includes(":"))) {
    throw invalidInput("IPv6 subnets are not supported");
  }
  if (ipVersion && ipVersion !== 4) {
    throw invalidInput(`Invalid input for operation: ${ipVersion} is not in [4, 6].`);
  }
}

/** The gateway a subnet asks for: none, the one given (a host address of the cidr), or the first. */
export function gatewayOf(cidr: Cidr, gatewayIp: string, noGateway: boolean): number | null {
  if (noGateway) return null;
  const gateway = gatewayIp ? parseIp(gatewayIp) : defaultGateway(cidr);
  if (!isValidHostAddress(cidr, gateway)) {
    throw invalidInput(`Gateway ip ${gatewayIp} is not a valid host address of ${formatCidr(cidr)}`);
  }
  return gateway;
}

/** The pools asked for, checked against the cidr and the gateway; none asked: Neutron's defaults. */
export function poolsOf(cidr: Cidr, gateway: number | null, pools: AllocationPool[]): Range[] {
  if (!pools.length) return defaultPools(cidr, gateway);
  return validatePools(
    cidr,
    gateway,
    pools.map((p) => ({ first: parseIp(p.start), last: parseIp(p.end) })),
  );
}

/** DNS name servers: IPv4 addresses, each once, at most MAX_DNS_NAMESERVERS. */
export function nameserversOf(subnet: string, servers: string[]): string[] {
  if (servers.length > MAX_DNS_NAMESERVERS) {
    throw invalidInput(
      `Unable to complete operation for ${subnet}. The number of DNS nameservers exceeds the limit ${MAX_DNS_NAMESERVERS}.`,
    );
  }
  const seen = new Set<string>();
  for (const s of servers) {
    if (!isIp(s)) throw invalidInput(`Invalid input for operation: '${s}' is not a valid nameserver.`);
    if (seen.has(s)) throw invalidInput(`Invalid input for operation: Duplicate nameserver '${s}'.`);
    seen.add(s);
  }
  return servers;
}

/** Host routes: an IPv4 destination cidr and next hop each, each once, at most MAX_HOST_ROUTES. */
export function hostRoutesOf(
  subnet: string,
  routes: HostRoute[],
): { destination: string; nexthop: string }[] {
  if (routes.length > MAX_HOST_ROUTES) {
    throw invalidInput(
      `Unable to complete operation for ${subnet}. The number of host routes exceeds the limit ${MAX_HOST_ROUTES}.`,
    );
  }
  const seen = new Set<string>();
  return routes.map((r) => {
    checkIpVersion(0, [r.destination, r.nexthop]);
    const destination = formatCidr(parseCidr(r.destination));
    const nexthop = r.nexthop.trim();
    if (!isIp(nexthop))
      throw invalidInput(`Invalid input for operation: '${r.nexthop}' is not a valid IP address.`);
    const key = `${destination} ${nexthop}`;
    if (seen.has(key)) {
      throw invalidInput(`Invalid input for operation: Duplicate hostroute '${destination}, ${nexthop}'.`);
    }
    seen.add(key);
    return { destination, nexthop };
  });
}
