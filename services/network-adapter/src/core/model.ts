// Loading rows into protobuf-shaped records (the service's domain objects are the contract's
// messages: there is no second model to keep in step).
import type { MessageInitShape } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import {
  IpAllocation,
  type NetworkSchema,
  type PortSchema,
  type RouterSchema,
  type SegmentSchema,
  type SubnetPoolSchema,
  type SubnetSchema,
} from "@stratus/contracts/network/v1";
import type { Queryable } from "@stratus/runtime";
import { formatIp } from "../ipam/ipv4.js";
import { cols } from "./columns.js";
import { routedNetworkSql, segmentOrderSql } from "./rules.js";

export type NetworkRec = MessageInitShape<typeof NetworkSchema> & {
  id: string;
  projectId: string;
  shared: boolean;
};
export type SegmentRec = MessageInitShape<typeof SegmentSchema> & {
  id: string;
  networkId: string;
  networkType: string;
  physicalNetwork: string;
};
export type SubnetRec = MessageInitShape<typeof SubnetSchema> & {
  id: string;
  networkId: string;
  segmentId: string;
  cidr: string;
};
export type PoolRec = MessageInitShape<typeof SubnetPoolSchema> & { id: string };
export type PortRec = MessageInitShape<typeof PortSchema> & {
  id: string;
  networkId: string;
  projectId: string;
  deviceId: string;
  deviceOwner: string;
  bindingHostId: string;
  ipAllocation: IpAllocation;
  fixedIps: { subnetId: string; ipAddress: string }[];
  /** Not in the message: the segment the port is bound on. */
  bindingSegmentId: string;
};
export type RouterRec = MessageInitShape<typeof RouterSchema> & { id: string; projectId: string };

type R = Record<string, unknown>;
const ts = (v: unknown) => timestampFromDate(v instanceof Date ? v : new Date(String(v)));
const str = (v: unknown) => (v === null || v === undefined ? "" : String(v));

/** Neutron's standard attributes of a row: description, timestamps and revision number. */
function standard(r: R) {
  return {
    description: str(r.description),
    createdAt: ts(r.created_at),
    updatedAt: ts(r.updated_at),
    revisionNumber: BigInt(String(r.revision_number ?? 1)),
  };
}

/** The order of a list that asks for none: oldest first. */
const DEFAULT_ORDER = (a: string) => `ORDER BY ${a}.created_at, ${a}.id`;

export const IP_ALLOCATION_NAMES: Record<IpAllocation, string> = {
  [IpAllocation.UNSPECIFIED]: "immediate",
  [IpAllocation.IMMEDIATE]: "immediate",
  [IpAllocation.DEFERRED]: "deferred",
  [IpAllocation.NONE]: "none",
};
const IP_ALLOCATION_VALUES: Record<string, IpAllocation> = {
  immediate: IpAllocation.IMMEDIATE,
  deferred: IpAllocation.DEFERRED,
  none: IpAllocation.NONE,
};

export function segmentOut(r: R): SegmentRec {
  return {
    id: str(r.id),
    networkId: str(r.network_id),
    name: str(r.name),
    networkType: str(r.network_type),
    physicalNetwork: str(r.physical_network),
    segmentationId: Number(r.segmentation_id),
    ...standard(r),
  };
}

export async function loadSegments(
  q: Queryable,
  where: string,
  params: unknown[],
  order = `ORDER BY ${segmentOrderSql("s")}`,
): Promise<SegmentRec[]> {
  return (
    await q.query(`SELECT ${cols("segments", "s")} FROM segments s WHERE ${where} ${order}`, params)
  ).map(segmentOut);
}

export async function loadNetworks(
  q: Queryable,
  where: string,
  params: unknown[],
  order = DEFAULT_ORDER("n"),
): Promise<NetworkRec[]> {
  const rows = await q.query(
    `SELECT ${cols("networks", "n")}, ${routedNetworkSql("n.id")} AS routed,
       NOT EXISTS (SELECT 1 FROM subnets asn WHERE asn.network_id = n.id AND asn.segment_id IS NOT NULL) AS l2_adjacency
     FROM networks n WHERE ${where} ${order}`,
    params,
  );
  if (!rows.length) return [];
  const ids = rows.map((r) => String(r.id));
  const segs = await q.query(
    `SELECT ${cols("segments")} FROM segments s WHERE s.network_id = ANY($1::uuid[]) ORDER BY ${segmentOrderSql("s")}`,
    [ids],
  );
  const subs = await q.query<{ id: string; network_id: string }>(
    "SELECT id, network_id FROM subnets WHERE network_id = ANY($1::uuid[]) ORDER BY created_at, id",
    [ids],
  );
  return rows.map((r) => {
    const mySegs = segs.filter((s) => s.network_id === r.id).map(segmentOut);
    const mySubs = subs.filter((s) => s.network_id === r.id);
    return {
      id: str(r.id),
      name: str(r.name),
      projectId: str(r.project_id),
      shared: Boolean(r.shared),
      routerExternal: Boolean(r.router_external),
      isDefault: Boolean(r.is_default),
      mtu: Number(r.mtu),
      status: str(r.status),
      adminStateUp: Boolean(r.admin_state_up),
      segments: mySegs,
      subnetIds: mySubs.map((s) => s.id),
      routed: Boolean(r.routed),
      l2Adjacency: Boolean(r.l2_adjacency),
      ...standard(r),
    };
  });
}

export async function loadSubnets(
  q: Queryable,
  where: string,
  params: unknown[],
  order = DEFAULT_ORDER("s"),
): Promise<SubnetRec[]> {
  const rows = await q.query(`SELECT ${cols("subnets", "s")} FROM subnets s WHERE ${where} ${order}`, params);
  if (!rows.length) return [];
  const pools = await q.query(
    "SELECT subnet_id, first_ip, last_ip FROM allocation_pools WHERE subnet_id = ANY($1::uuid[]) ORDER BY first_ip",
    [rows.map((r) => r.id)],
  );
  return rows.map((r) => ({
    id: str(r.id),
    networkId: str(r.network_id),
    segmentId: str(r.segment_id),
    projectId: str(r.project_id),
    name: str(r.name),
    cidr: str(r.cidr),
    ipVersion: Number(r.ip_version),
    gatewayIp: r.gateway_ip === null ? "" : formatIp(Number(r.gateway_ip)),
    allocationPools: pools
      .filter((p) => p.subnet_id === r.id)
      .map((p) => ({ start: formatIp(Number(p.first_ip)), end: formatIp(Number(p.last_ip)) })),
    subnetpoolId: str(r.subnetpool_id),
    enableDhcp: Boolean(r.enable_dhcp),
    dnsNameservers: (r.dns_nameservers as string[] | null) ?? [],
    hostRoutes: jsonColumn<{ destination: string; nexthop: string }[]>(r.host_routes ?? "[]"),
    ...standard(r),
  }));
}

export function poolOut(r: R): PoolRec {
  return {
    id: str(r.id),
    name: str(r.name),
    projectId: str(r.project_id),
    prefixes: (r.prefixes as string[]) ?? [],
    defaultPrefixlen: Number(r.default_prefixlen),
    minPrefixlen: Number(r.min_prefixlen),
    maxPrefixlen: Number(r.max_prefixlen),
    isDefault: Boolean(r.is_default),
    shared: Boolean(r.shared),
    ipVersion: Number(r.ip_version),
    ...standard(r),
  };
}

export async function loadSubnetPools(
  q: Queryable,
  where: string,
  params: unknown[],
  order = DEFAULT_ORDER("sp"),
): Promise<PoolRec[]> {
  return (
    await q.query(`SELECT ${cols("subnet_pools", "sp")} FROM subnet_pools sp WHERE ${where} ${order}`, params)
  ).map(poolOut);
}

/** A json/jsonb column or json_agg result: parsed by the driver (pg) or still text (PGlite). */
export const jsonColumn = <T>(v: unknown): T => (typeof v === "string" ? JSON.parse(v) : v) as T;

const jsonMap = (v: unknown): Record<string, string> => {
  const o = jsonColumn<Record<string, unknown> | null>(v);
  return Object.fromEntries(Object.entries(o ?? {}).map(([k, x]) => [k, String(x)]));
};

export async function loadPorts(
  q: Queryable,
  where: string,
  params: unknown[],
  order = DEFAULT_ORDER("p"),
): Promise<PortRec[]> {
  const rows = await q.query(`SELECT ${cols("ports", "p")} FROM ports p WHERE ${where} ${order}`, params);
  if (!rows.length) return [];
  const ips = await q.query(
    "SELECT port_id, subnet_id, ip FROM ip_allocations WHERE port_id = ANY($1::uuid[]) ORDER BY ip",
    [rows.map((r) => r.id)],
  );
  // Grouped once, not filtered per port: that would be quadratic in the number of ports listed.
  const byPort = new Map<unknown, { subnetId: string; ip: number }[]>();
  for (const i of ips) {
    const list = byPort.get(i.port_id);
    const ip = { subnetId: str(i.subnet_id), ip: Number(i.ip) };
    if (list) list.push(ip);
    else byPort.set(i.port_id, [ip]);
  }
  return rows.map((r) => portFromRow(r, byPort.get(r.id) ?? []));
}

export function portFromRow(r: R, ips: { subnetId: string; ip: number }[]): PortRec {
  return {
    id: str(r.id),
    networkId: str(r.network_id),
    projectId: str(r.project_id),
    name: str(r.name),
    macAddress: str(r.mac_address),
    fixedIps: [...ips]
      .sort((a, b) => a.ip - b.ip)
      .map((i) => ({ subnetId: i.subnetId, ipAddress: formatIp(i.ip) })),
    deviceId: str(r.device_id),
    deviceOwner: str(r.device_owner),
    status: str(r.status),
    ipAllocation: IP_ALLOCATION_VALUES[str(r.ip_allocation)] ?? IpAllocation.IMMEDIATE,
    bindingHostId: str(r.binding_host_id),
    bindingVifType: str(r.binding_vif_type),
    bindingVifDetails: jsonMap(r.binding_vif_details),
    bindingProfile: jsonMap(r.binding_profile),
    bindingVnicType: str(r.binding_vnic_type),
    adminStateUp: Boolean(r.admin_state_up),
    bindingSegmentId: str(r.binding_segment_id),
    ...standard(r),
  };
}

export async function loadRouters(
  q: Queryable,
  where: string,
  params: unknown[],
  order = DEFAULT_ORDER("r"),
): Promise<RouterRec[]> {
  const rows = await q.query(`SELECT ${cols("routers", "r")} FROM routers r WHERE ${where} ${order}`, params);
  if (!rows.length) return [];
  const ids = rows.map((r) => r.id);
  const ifaces = await q.query(
    `SELECT ${cols("router_interfaces")} FROM router_interfaces WHERE router_id = ANY($1::uuid[])`,
    [ids],
  );
  const gwIps = await q.query(
    `SELECT r.id AS router_id, a.subnet_id, a.ip FROM routers r JOIN ip_allocations a ON a.port_id = r.gateway_port_id
     WHERE r.id = ANY($1::uuid[]) ORDER BY a.ip`,
    [ids],
  );
  return rows.map((r) => ({
    id: str(r.id),
    name: str(r.name),
    projectId: str(r.project_id),
    externalNetworkId: str(r.external_network_id),
    externalFixedIps: gwIps
      .filter((g) => g.router_id === r.id)
      .map((g) => ({ subnetId: str(g.subnet_id), ipAddress: formatIp(Number(g.ip)) })),
    interfaces: ifaces
      .filter((i) => i.router_id === r.id)
      .map((i) => ({ subnetId: str(i.subnet_id), portId: str(i.port_id) })),
    status: str(r.status),
    adminStateUp: Boolean(r.admin_state_up),
    enableSnat: Boolean(r.enable_snat),
    ...standard(r),
  }));
}
