// Subnets (on a segment for routed networks, from a subnet pool by prefixlen, or by cidr) and
// subnet pools. IPv4 only: the network-adapter refuses IPv6 with a 400. The owner checks every
// rule; this file translates.
import type { MessageShape } from "@bufbuild/protobuf";
import type { SubnetPoolSchema, SubnetSchema } from "@stratus/contracts/network/v1";
import type { NetworkDeps } from "./deps.js";
import { badRequest } from "./faults.js";
import { projectOf } from "./project.js";
import { type Attrs, neutronTime, onlyKeys, registerResource, textOf } from "./resource.js";
import type { NetRequest, NetRouter } from "./router.js";

type Subnet = MessageShape<typeof SubnetSchema>;
type SubnetPool = MessageShape<typeof SubnetPoolSchema>;

const SUBNET_ATTRS: Attrs = {
  network_id: { type: "uuid", post: true, required: true },
  segment_id: { type: "uuid_or_null", post: true, put: true },
  name: { type: "string", post: true, put: true },
  description: { type: "string", post: true, put: true },
  project_id: { type: "string", post: true },
  tenant_id: { type: "string", post: true },
  ip_version: { type: "int", post: true, required: true },
  cidr: { type: "string_or_null", post: true },
  subnetpool_id: { type: "uuid_or_null", post: true },
  prefixlen: { type: "int", post: true },
  use_default_subnetpool: { type: "bool", post: true },
  gateway_ip: { type: "string_or_null", post: true, put: true },
  allocation_pools: { type: "object_list", post: true, put: true },
  enable_dhcp: { type: "bool", post: true, put: true },
  dns_nameservers: { type: "string_list", post: true, put: true },
  host_routes: { type: "object_list", post: true, put: true },
  ipv6_address_mode: { type: "string_or_null", post: true },
  ipv6_ra_mode: { type: "string_or_null", post: true },
};

const POOL_ATTRS: Attrs = {
  name: { type: "string", post: true, put: true, required: true },
  description: { type: "string", post: true, put: true },
  project_id: { type: "string", post: true },
  tenant_id: { type: "string", post: true },
  prefixes: { type: "string_list", post: true, put: true, required: true },
  default_prefixlen: { type: "int", post: true, put: true },
  min_prefixlen: { type: "int", post: true, put: true },
  max_prefixlen: { type: "int", post: true, put: true },
  is_default: { type: "bool", post: true, put: true },
  shared: { type: "bool", post: true, put: true },
  address_scope_id: { type: "uuid_or_null", post: true, put: true },
};

export function subnetView(_req: NetRequest, s: Subnet): Record<string, unknown> {
  return {
    id: s.id,
    name: s.name,
    description: s.description,
    network_id: s.networkId,
    segment_id: s.segmentId || null,
    project_id: s.projectId,
    tenant_id: s.projectId,
    ip_version: s.ipVersion,
    cidr: s.cidr,
    gateway_ip: s.gatewayIp || null,
    allocation_pools: s.allocationPools.map((p) => ({ start: p.start, end: p.end })),
    subnetpool_id: s.subnetpoolId || null,
    enable_dhcp: s.enableDhcp,
    dns_nameservers: s.dnsNameservers,
    host_routes: s.hostRoutes.map((r) => ({ destination: r.destination, nexthop: r.nexthop })),
    ipv6_address_mode: null,
    ipv6_ra_mode: null,
    created_at: neutronTime(s.createdAt),
    updated_at: neutronTime(s.updatedAt),
    revision_number: Number(s.revisionNumber),
  };
}

export function subnetPoolView(_req: NetRequest, p: SubnetPool): Record<string, unknown> {
  return {
    id: p.id,
    name: p.name,
    description: p.description,
    project_id: p.projectId,
    tenant_id: p.projectId,
    prefixes: p.prefixes,
    ip_version: p.ipVersion,
    default_prefixlen: p.defaultPrefixlen,
    min_prefixlen: p.minPrefixlen,
    max_prefixlen: p.maxPrefixlen,
    is_default: p.isDefault,
    shared: p.shared,
    created_at: neutronTime(p.createdAt),
    updated_at: neutronTime(p.updatedAt),
    revision_number: Number(p.revisionNumber),
  };
}

const pools = (v: unknown) =>
  (v as Record<string, unknown>[]).map((o) => {
    onlyKeys("allocation_pools", o, ["start", "end"]);
    return { start: textOf("allocation_pools", o, "start"), end: textOf("allocation_pools", o, "end") };
  });

const routes = (v: unknown) =>
  (v as Record<string, unknown>[]).map((o) => {
    onlyKeys("host_routes", o, ["destination", "nexthop"]);
    return {
      destination: textOf("host_routes", o, "destination"),
      nexthop: textOf("host_routes", o, "nexthop"),
    };
  });

/** IPv6 attributes: only their absence (or null) is served. */
function refuseIpv6Modes(b: Record<string, unknown>): void {
  for (const k of ["ipv6_address_mode", "ipv6_ra_mode"]) {
    if (b[k] != null) throw badRequest(`Invalid input for ${k}. Reason: IPv6 subnets are not supported.`);
  }
}

export function subnetRoutes(router: NetRouter, deps: NetworkDeps): void {
  const net = deps.network;
  registerResource<Subnet>(router, {
    singular: "subnet",
    collection: "subnets",
    attrs: SUBNET_ATTRS,
    id: (s) => s.id,
    view: subnetView,
    list: async (_req, query) => {
      const r = await net.listSubnets({ query });
      return { items: r.subnets, hasMore: r.hasMore };
    },
    get: async (_req, id) => (await net.getSubnet({ id })).subnet!,
    create: async (_req, b) => {
      refuseIpv6Modes(b);
      const r = await net.createSubnet({
        networkId: b.network_id as string,
        segmentId: (b.segment_id as string | null | undefined) ?? "",
        projectId: projectOf(b),
        name: (b.name as string | undefined) ?? "",
        description: (b.description as string | undefined) ?? "",
        ipVersion: b.ip_version as number,
        cidr: (b.cidr as string | null | undefined) ?? "",
        subnetpoolId: (b.subnetpool_id as string | null | undefined) ?? "",
        prefixlen: (b.prefixlen as number | undefined) ?? 0,
        useDefaultSubnetpool: b.use_default_subnetpool === true,
        gatewayIp: (b.gateway_ip as string | null | undefined) ?? "",
        noGateway: b.gateway_ip === null,
        allocationPools: b.allocation_pools === undefined ? [] : pools(b.allocation_pools),
        // Neutron's default: DHCP on.
        enableDhcp: b.enable_dhcp !== false,
        dnsNameservers: (b.dns_nameservers as string[] | undefined) ?? [],
        hostRoutes: b.host_routes === undefined ? [] : routes(b.host_routes),
      });
      return r.subnet!;
    },
    update: async (_req, id, b) => {
      const r = await net.updateSubnet({
        id,
        name: b.name as string | undefined,
        description: b.description as string | undefined,
        enableDhcp: b.enable_dhcp as boolean | undefined,
        ...(b.allocation_pools === undefined
          ? {}
          : { allocationPools: pools(b.allocation_pools), updateAllocationPools: true }),
        ...(b.gateway_ip === undefined
          ? {}
          : { gatewayIp: (b.gateway_ip as string | null) ?? "", updateGatewayIp: true }),
        ...(b.dns_nameservers === undefined
          ? {}
          : { dnsNameservers: b.dns_nameservers as string[], updateDnsNameservers: true }),
        ...(b.host_routes === undefined ? {} : { hostRoutes: routes(b.host_routes), updateHostRoutes: true }),
        ...(b.segment_id == null ? {} : { segmentId: b.segment_id as string }),
      });
      return r.subnet!;
    },
    remove: async (_req, id) => {
      await net.deleteSubnet({ id });
    },
  });

  registerResource<SubnetPool>(router, {
    singular: "subnetpool",
    collection: "subnetpools",
    attrs: POOL_ATTRS,
    id: (p) => p.id,
    view: subnetPoolView,
    list: async (_req, query) => {
      const r = await net.listSubnetPools({ query });
      return { items: r.pools, hasMore: r.hasMore };
    },
    get: async (_req, id) => (await net.getSubnetPool({ id })).pool!,
    create: async (_req, b) => {
      if (b.address_scope_id != null) throw badRequest("Address scopes are not supported.");
      const r = await net.createSubnetPool({
        pool: {
          name: b.name as string,
          description: (b.description as string | undefined) ?? "",
          projectId: projectOf(b),
          prefixes: b.prefixes as string[],
          defaultPrefixlen: (b.default_prefixlen as number | undefined) ?? 0,
          minPrefixlen: (b.min_prefixlen as number | undefined) ?? 0,
          maxPrefixlen: (b.max_prefixlen as number | undefined) ?? 0,
          isDefault: b.is_default === true,
          shared: b.shared === true,
        },
      });
      return r.pool!;
    },
    update: async (_req, id, b) => {
      if (b.address_scope_id != null) throw badRequest("Address scopes are not supported.");
      const r = await net.updateSubnetPool({
        id,
        name: b.name as string | undefined,
        description: b.description as string | undefined,
        ...(b.prefixes === undefined ? {} : { prefixes: b.prefixes as string[], updatePrefixes: true }),
        defaultPrefixlen: b.default_prefixlen as number | undefined,
        minPrefixlen: b.min_prefixlen as number | undefined,
        maxPrefixlen: b.max_prefixlen as number | undefined,
        isDefault: b.is_default as boolean | undefined,
        shared: b.shared as boolean | undefined,
      });
      return r.pool!;
    },
    remove: async (_req, id) => {
      await net.deleteSubnetPool({ id });
    },
  });
}
