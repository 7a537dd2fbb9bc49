// The network-adapter's rules, each written once: who sees a network or a port, which network is
// routed, which segments a host reaches, what ip_allocation a new port gets, how a MAC is drawn,
// and what a binding tells the driver. Every path that applies one (a transaction, a statement
// gathered per turn) is built from the definition here: an SQL fragment where the database
// decides (the transactional path reads the verdict as a column rather than deciding again), a
// TypeScript function only where a request is judged before any SQL runs. The choice of an address
// is a rule of the same kind; it lives in ipam.ts, beside the free list it depends on.
import { type CreatePortRequest, IpAllocation } from "@stratus/contracts/network/v1";
import type { Caller } from "./context.js";

// ---- the caller, in SQL ---------------------------------------------------------------------

/** A statement's caller as SQL expressions: whether it is an admin, and its project. */
export interface CallerSql {
  isAdmin: string;
  projectId: string;
}

/**
 * The caller of a statement made for one call, as parameters from $first on: an admin is the
 * constant true (the planner folds `true OR …` away, so the statement is the plain unscoped one),
 * anyone else its project as a parameter (and `false OR …` folds to the project's test).
 */
export function callerParams(caller: Caller, first: number): { sql: CallerSql; params: unknown[] } {
  if (caller.isAdmin) return { sql: { isAdmin: "true", projectId: "''" }, params: [] };
  return { sql: { isAdmin: "false", projectId: `$${first}::text` }, params: [caller.projectId] };
}

/** The caller of each row of a statement made for many calls: its is_admin and caller_project. */
export function callerColumns(alias: string): CallerSql {
  return { isAdmin: `${alias}.is_admin`, projectId: `${alias}.caller_project` };
}

// ---- visibility -----------------------------------------------------------------------------

/** SQL: network `n` (an alias) is visible to the caller: an admin's, its own, shared or external. */
export function networkVisibleSql(n: string, c: CallerSql): string {
  return `(${c.isAdmin} OR ${n}.project_id = ${c.projectId} OR ${n}.shared OR ${n}.router_external)`;
}

/**
 * SQL: network `n` may hold the caller's ports: an admin's, its own or shared. An external network
 * of another project is visible yet refused (forbidden, where the caller could not see it at all
 * for a network that is neither).
 */
export function networkUsableSql(n: string, c: CallerSql): string {
  return `(${c.isAdmin} OR ${n}.project_id = ${c.projectId} OR ${n}.shared)`;
}

/** SQL: port `p` (an alias) is visible to the caller: an admin's, or its own project's. */
export function portVisibleSql(p: string, c: CallerSql): string {
  return `(${c.isAdmin} OR ${p}.project_id = ${c.projectId})`;
}

// ---- routed networks and the segments a host reaches ----------------------------------------

/**
 * SQL: the network `networkId` (an SQL expression) is routed: it has more than one segment, or a
 * subnet bound to a segment. Its ports then get their address when bound to a host (deferred).
 */
export function routedNetworkSql(networkId: string): string {
  return `((SELECT count(*) FROM segments rs WHERE rs.network_id = ${networkId}) > 1
    OR EXISTS (SELECT 1 FROM subnets rsn WHERE rsn.network_id = ${networkId} AND rsn.segment_id IS NOT NULL))`;
}

/** SQL: the physical networks host `host` (an SQL expression) reported; none when it never did. */
export function hostPhysnetsSql(host: string): string {
  return `coalesce((SELECT h.physical_networks FROM hosts h WHERE h.host = ${host}), '{}')`;
}

/** SQL: the order of a network's segments (alias `s`): the order they were made in. */
export const segmentOrderSql = (s: string) => `${s}.segment_index, ${s}.created_at, ${s}.id`;

/**
 * SQL query: the ids of the segments of network `networkId` that a host with the physical
 * networks `physnets` (SQL text[]) reaches, in the order binding prefers them (oldest first). A
 * segment without a physical network (a tenant network's tunnel) reaches every host. With
 * `withSubnet`, only segments that have a subnet: where a port of a routed network can be bound.
 */
export function reachableSegmentsSql(
  networkId: string,
  physnets: string,
  opts: { withSubnet: boolean },
): string {
  const withSubnet = opts.withSubnet
    ? " AND EXISTS (SELECT 1 FROM subnets sn WHERE sn.segment_id = s.id)"
    : "";
  return `SELECT s.id FROM segments s
        WHERE s.network_id = ${networkId}
          AND (s.physical_network = '' OR s.physical_network = ANY(${physnets}))${withSubnet}
        ORDER BY ${segmentOrderSql("s")}`;
}

// ---- new ports ------------------------------------------------------------------------------

/**
 * The ip_allocation a new port gets (Neutron's): the one asked for; unspecified is none when
 * fixed_ips was given as an empty list, deferred on a routed network when neither fixed IPs nor
 * a host are given (the address comes with the host), immediate otherwise (with a host, from its
 * segment at once).
 */
export function allocationMode(
  req: Pick<CreatePortRequest, "ipAllocation" | "fixedIps" | "noFixedIps" | "bindingHostId">,
  routed: boolean,
): IpAllocation {
  if (req.ipAllocation !== IpAllocation.UNSPECIFIED) return req.ipAllocation;
  if (req.noFixedIps) return IpAllocation.NONE;
  return routed && !req.fixedIps.length && !req.bindingHostId
    ? IpAllocation.DEFERRED
    : IpAllocation.IMMEDIATE;
}

/** A MAC address as a caller may ask for one. */
export const MAC_PATTERN = /^([0-9a-f]{2}:){5}[0-9a-f]{2}$/i;

/**
 * SQL: a random MAC under OpenStack's prefix fa:16:3e (2^24 values). Drawn by the database, in the
 * statement that inserts the port: the unique key (network_id, mac_address) is the judge of a
 * collision (no look-up first), and a port whose draw collided is drawn again (MAC_DRAWS).
 */
export const RANDOM_MAC_SQL = `('fa:16:3e:' || regexp_replace(lpad(to_hex(floor(random() * 16777216)::int), 6, '0'),
    '(..)(..)(..)', '\\1:\\2:\\3'))`;

/** Draws of a MAC for one port before giving up: a drawn MAC already on the network is drawn again. */
export const MAC_DRAWS = 8;

/**
 * Ports the network itself owns (Neutron's AUTO_DELETE_PORT_OWNERS: DHCP, distributed and agent
 * gateway ports): deleted with their network or subnet instead of keeping it in use.
 */
export const AUTO_DELETED_PORT_OWNERS = [
  "network:dhcp",
  "network:distributed",
  "network:floatingip_agent_gateway",
];

/** SQL: port `p` (an alias) keeps its network or subnet in use (it is not one of those). */
export function keepsInUseSql(p: string): string {
  return `${p}.device_owner <> ALL('{${AUTO_DELETED_PORT_OWNERS.join(",")}}'::text[])`;
}

/** A port attached to a server (Nova's device_owner compute:<zone>). */
export function attachedToServer(deviceOwner: string): boolean {
  return deviceOwner.startsWith("compute:");
}

/** The owners of a router's ports: its external gateway and its interfaces. */
export const ROUTER_GATEWAY_OWNER = "network:router_gateway";
export const ROUTER_INTERFACE_OWNER = "network:router_interface";

/** Router ports: made and removed only through the router. */
export function isRouterPort(deviceOwner: string): boolean {
  return deviceOwner === ROUTER_INTERFACE_OWNER || deviceOwner === ROUTER_GATEWAY_OWNER;
}

// ---- placement ------------------------------------------------------------------------------

/**
 * The addresses of network:* ports (router interfaces and gateways) count as reserved in their
 * segment's IPV4_ADDRESS inventory; compute ports' addresses are counted by instance allocations.
 */
export function reservesAddresses(deviceOwner: string): boolean {
  return deviceOwner.startsWith("network:");
}

/** SQL: reservesAddresses for the owner column of port `p` (an alias). */
export function reservesAddressesSql(p: string): string {
  return `${p}.device_owner LIKE 'network:%'`;
}

// ---- changes --------------------------------------------------------------------------------

/** SQL: the SET items every change of a row of `table` makes (Neutron's revision_number, and updated_at). */
export function revisedSql(table: string): string {
  return `revision_number = ${table}.revision_number + 1, updated_at = now()`;
}

// ---- binding --------------------------------------------------------------------------------

/** What a bound port tells the compute host's driver (Open vSwitch, integration bridge). */
export const VIF_TYPE = "ovs";
export const VIF_DETAILS = { port_filter: "true", connectivity: "l2", bridge_name: "br-int" };

/** A list of columns with their values (SQL expressions), for an INSERT or an UPDATE's SET. */
export type ColumnValues = [column: string, value: string][];

/** SQL: the SET items that give the columns these values. */
const setSql = (values: ColumnValues) => values.map(([c, v]) => `${c} = ${v}`).join(", ");

/** The vif type and details above, as column values. */
const VIF_VALUES: ColumnValues = [
  ["binding_vif_type", `'${VIF_TYPE}'`],
  ["binding_vif_details", `'${JSON.stringify(VIF_DETAILS)}'::jsonb`],
];

/** SQL: the SET items that record the vif type and details above. */
export const VIF_SET_SQL = setSql(VIF_VALUES);

/**
 * The binding columns of a port bound to `host` on `segment` with `profile` (SQL expressions, the
 * profile as json text): the vif above, and status DOWN until the compute host has checked it.
 */
function boundPortValues(host: string, profile: string, segment: string): ColumnValues {
  return [
    ["binding_host_id", host],
    ...VIF_VALUES,
    ["binding_profile", `${profile}::jsonb`],
    ["binding_segment_id", segment],
    ["status", "'DOWN'"],
  ];
}

/** SQL: the SET items of a port bound (boundPortValues), counted as a change of the port. */
export function boundPortSetSql(host: string, profile: string, segment: string): string {
  return `${setSql(boundPortValues(host, profile, segment))}, ${revisedSql("ports")}`;
}

/**
 * The revision of a port inserted already bound: the revision a new row starts at (1, the
 * column's default) and its bind (boundPortSetSql's revisedSql): the port is the one a creation
 * followed by a bind leaves, whichever way it was made.
 */
const BOUND_AT_CREATION_REVISION = 2;

/** The columns of a new port inserted already bound: those boundPortSetSql sets, with the revision. */
export function boundNewPortValues(host: string, profile: string, segment: string): ColumnValues {
  return [
    ...boundPortValues(host, profile, segment),
    ["revision_number", String(BOUND_AT_CREATION_REVISION)],
  ];
}
