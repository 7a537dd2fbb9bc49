// The statements that serve many calls at once (PortService gathers the calls of one event-loop
// turn, and a lone call is a batch of one): CreatePort's common cases, with an automatic address
// on a network that is not routed, deferred on one that is, or on one that is with a host to bind
// to at once (the port inserted already bound, with an address from the host's segment), and the
// first bind of a deferred port. Each is built from the same rules (rules.ts) and the same choice of addresses (ipam.ts)
// as the transactional path, and answers per call with a row or nothing; for a call without a row
// nothing was written, and the transactional path answers it (it waits for addresses locked by
// allocations in flight, reports exhaustion, explains a refusal). port-paths.test.ts runs both
// paths over the same cases and compares what they write.
import { randomUUID } from "node:crypto";
import { type CreatePortRequest, IpAllocation } from "@stratus/contracts/network/v1";
import type { Queryable } from "@stratus/runtime";
import { cols } from "./columns.js";
import { type Caller, mayActFor } from "./context.js";
import { isUuid } from "./ids.js";
import { freeAddressesSql, takeAndHoldSql } from "./ipam.js";
import {
  insertDrawingMacs,
  insertPortsSql,
  MAC_TAKEN,
  type Made,
  NEW_PORT_COLUMNS,
  NEW_PORT_REQUESTS_SQL,
  type NewPort,
  newPortColumns,
  portMacSql,
} from "./new-ports.js";
import { overQuota } from "./quotas.js";
import {
  allocationMode,
  boundNewPortValues,
  boundPortSetSql,
  callerColumns,
  hostPhysnetsSql,
  MAC_PATTERN,
  networkUsableSql,
  networkVisibleSql,
  portVisibleSql,
  reachableSegmentsSql,
  routedNetworkSql,
} from "./rules.js";
import { columns, rowsByKey } from "./unnest.js";

type Row = Record<string, unknown>;

// ---- CreatePort -----------------------------------------------------------------------------

/**
 * Whether a creation statement may make this request's port, and with which ip_allocation: the
 * mode it gets on a network that is routed (`routed`) or not, when it names no fixed IPs, a
 * well-formed MAC if any, a network id that can exist, and no project but the caller's own
 * (unless the caller is an admin); with `bound`, a host to bind it to and a caller that may bind
 * (an admin, as createPort checks), else neither a host nor a binding profile. The statement then
 * checks the network.
 */
function statementMode(
  req: CreatePortRequest,
  caller: Caller,
  routed: boolean,
  bound = false,
): IpAllocation | undefined {
  const binding = bound
    ? Boolean(req.bindingHostId) && caller.isAdmin
    : !req.bindingHostId && !Object.keys(req.bindingProfile).length;
  const plain =
    binding &&
    !req.fixedIps.length &&
    !req.noFixedIps &&
    (!req.macAddress || MAC_PATTERN.test(req.macAddress)) &&
    isUuid(req.networkId) &&
    mayActFor(req.projectId, caller);
  return plain ? allocationMode(req, routed) : undefined;
}

/** A CreatePort the immediate statement may make: an automatic address, nothing else asked. */
export function immediateEligible(req: CreatePortRequest, caller: Caller): boolean {
  return statementMode(req, caller, false) === IpAllocation.IMMEDIATE;
}

/** A CreatePort the deferred statement may make: a routed network's port, no address asked. */
export function deferredEligible(req: CreatePortRequest, caller: Caller): boolean {
  return statementMode(req, caller, true) === IpAllocation.DEFERRED;
}

/**
 * A CreatePort the bound statement may make: a routed network's port with a host to bind it to
 * (by an admin), and perhaps a binding profile, no address asked (it gets one from the host's
 * segment at once).
 */
export function boundEligible(req: CreatePortRequest, caller: Caller): boolean {
  return statementMode(req, caller, true, true) === IpAllocation.IMMEDIATE;
}

/**
 * SQL CTEs of the creation statements: r, the requests (`requests`, by default those of
 * NEW_PORT_REQUESTS_SQL); routed, their networks that are routed; ok, the requests whose network
 * exists, may hold the caller's ports and is routed (or not, as `routed` says), each with its
 * port's MAC (the one asked for, or a draw).
 */
function usableRequestsSql(routed: boolean, requests = NEW_PORT_REQUESTS_SQL): string {
  return `r AS (${requests}),
  routed AS (SELECT n.id FROM networks n WHERE n.id IN (SELECT network_id FROM r) AND ${routedNetworkSql("n.id")}),
  ok AS MATERIALIZED (
    SELECT r.*, ${portMacSql("r")} AS port_mac FROM r JOIN networks n ON n.id = r.network_id
    WHERE ${networkUsableSql("n", callerColumns("r"))} AND n.id ${routed ? "" : "NOT "}IN (SELECT id FROM routed))`;
}

/**
 * Ports with an automatic address on networks that are not routed: the n-th request for a
 * network gets the n-th address of that network as ipam.ts orders them (not locked by allocations
 * in flight), and for the requests that got one the ports, the addresses taken off the free list
 * and their ip_allocations rows are written together. A row per request that got an address:
 * request_id, the port's columns (null when its MAC was already on the network: nothing was
 * written for it, its address stays free) and the address held.
 */
const CREATE_IMMEDIATE_SQL = `WITH ${usableRequestsSql(false)},
  numbered AS (SELECT ok.*, row_number() OVER (PARTITION BY ok.network_id ORDER BY ok.k) AS rn FROM ok),
  need AS (SELECT network_id AS key, count(*) AS c FROM ok GROUP BY network_id),
  free AS (${freeAddressesSql("need", (sn, key) => `${sn}.network_id = ${key}`)}),
  paired AS MATERIALIZED (
    SELECT numbered.*, free.subnet_id, free.segment_id, free.ip
    FROM numbered JOIN free ON free.key = numbered.network_id AND free.rn = numbered.rn),
  new_port AS (${insertPortsSql("paired", "'immediate'")}),
  won AS (SELECT paired.subnet_id, paired.ip, paired.id AS port_id FROM paired JOIN new_port ON new_port.id = paired.id),
  ${takeAndHoldSql("won")}
  SELECT paired.id AS request_id, new_port.*, held.subnet_id AS held_subnet_id, held.ip AS held_ip,
    paired.segment_id AS held_segment_id
  FROM paired LEFT JOIN new_port ON new_port.id = paired.id LEFT JOIN held ON held.port_id = paired.id`;

/**
 * Ports on routed networks without fixed IPs: deferred, so no address until they are bound, and
 * one INSERT. A row per request whose network qualifies: request_id and the port's columns (null
 * when its MAC was already on the network).
 */
const CREATE_DEFERRED_SQL = `WITH ${usableRequestsSql(true)},
  new_port AS (${insertPortsSql("ok", "'deferred'")})
  SELECT ok.id AS request_id, new_port.* FROM ok LEFT JOIN new_port ON new_port.id = ok.id`;

/**
 * Ports on routed networks made already bound to a host (binding:host_id given), without fixed
 * IPs: what createPort and then bindPort make, in one statement. Each port's target is the first
 * segment its host reaches that has a subnet (as bindPort chooses it), the ports aiming at one
 * segment get its addresses as ipam.ts orders them, one each, in request order (not locked by
 * allocations in flight), and for the requests that got one the ports are inserted bound
 * (boundNewPortValues: PostgreSQL's UPDATE in the same statement would not see a row its CTE
 * inserted), the addresses taken off the free list and held. A row per request that got an
 * address: request_id, the port's columns (null when its MAC was already on the network: nothing
 * was written for it, its address stays free) and the address held. No row: the host reaches no
 * segment with a subnet, or its segment has no unlocked address left.
 */
const CREATE_BOUND_SQL = `WITH ${usableRequestsSql(
  true,
  `WITH q AS (${NEW_PORT_REQUESTS_SQL}) SELECT q.*, b.host, b.profile FROM q
      JOIN unnest($${NEW_PORT_COLUMNS + 1}::text[], $${NEW_PORT_COLUMNS + 2}::text[]) WITH ORDINALITY AS b(host, profile, k)
        ON b.k = q.k`,
)},
  target AS MATERIALIZED (
    SELECT ok.*, (${reachableSegmentsSql("ok.network_id", hostPhysnetsSql("ok.host"), { withSubnet: true })} LIMIT 1)
      AS segment_id FROM ok),
  numbered AS (
    SELECT target.*, row_number() OVER (PARTITION BY target.segment_id ORDER BY target.k) AS rn
    FROM target WHERE target.segment_id IS NOT NULL),
  need AS (SELECT segment_id AS key, count(*) AS c FROM numbered GROUP BY segment_id),
  picks AS MATERIALIZED (${freeAddressesSql("need", (sn, key) => `${sn}.segment_id = ${key}`)}),
  paired AS MATERIALIZED (
    SELECT numbered.*, picks.subnet_id, picks.ip
    FROM numbered JOIN picks ON picks.key = numbered.segment_id AND picks.rn = numbered.rn),
  new_port AS (${insertPortsSql("paired", "'immediate'", boundNewPortValues("host", "profile", "segment_id"))}),
  won AS (SELECT paired.subnet_id, paired.ip, paired.id AS port_id FROM paired JOIN new_port ON new_port.id = paired.id),
  ${takeAndHoldSql("won")}
  SELECT paired.id AS request_id, new_port.*, held.subnet_id AS held_subnet_id, held.ip AS held_ip,
    paired.segment_id AS held_segment_id
  FROM paired LEFT JOIN new_port ON new_port.id = paired.id LEFT JOIN held ON held.port_id = paired.id`;

/** One run of a creation statement: per request its row, MAC_TAKEN, or null. */
async function runCreation(q: Queryable, statement: Creation, items: NewPort[]): Promise<Made[]> {
  const ids = items.map(() => randomUUID());
  const params = [...newPortColumns(items, ids), ...(statement.params?.(items) ?? [])];
  const rows = await q.query(statement.sql, params, { name: statement.name });
  return rowsByKey(ids, rows, "request_id").map((row) => {
    if (!row) return null;
    return row.id === null ? MAC_TAKEN : row;
  });
}

/** A creation statement: its SQL, its name, and its parameters after newPortColumns'. */
interface Creation {
  sql: string;
  name: string;
  params?: (items: NewPort[]) => unknown[][];
}

const IMMEDIATE: Creation = { sql: CREATE_IMMEDIATE_SQL, name: "net_create_immediate_ports" };
const DEFERRED: Creation = { sql: CREATE_DEFERRED_SQL, name: "net_create_deferred_ports" };
const BOUND: Creation = {
  sql: CREATE_BOUND_SQL,
  name: "net_create_bound_ports",
  params: (items) =>
    columns(
      items.map(({ req }) => [req.bindingHostId, JSON.stringify(req.bindingProfile ?? {})]),
      2,
    ),
};

/** Errors after which a statement's requests are run again one by one, and one failing so is left to the transaction. */
function fallBackOn(err: unknown): boolean {
  const code = (err as { code?: string })?.code;
  return code === "23503" || code === "40001" || code === "40P01";
}

/** A run of a statement that takes addresses, a failed batch run again request by request. */
async function runTakingAddresses(q: Queryable, statement: Creation, items: NewPort[]): Promise<Made[]> {
  try {
    return await runCreation(q, statement, items);
  } catch (err) {
    // A quota refusal of a statement is not each of its requests': a batch that would go past the
    // limit is run again request by request, and a request refused alone is left to the
    // transaction, which makes it if it still fits and refuses it in the quota's words if not.
    if (!fallBackOn(err) && overQuota(err) === undefined) throw err;
    if (items.length === 1) return [null];
    return Promise.all(items.map(async (item) => (await runTakingAddresses(q, statement, [item]))[0]!));
  }
}

const madeOrNull = (made: Made[]): (Row | null)[] => made.map((m) => (m === MAC_TAKEN ? null : m));

/**
 * The ports of immediateEligible requests, in one statement (autocommitted when `q` is the
 * database): per request its new row (with held_subnet_id, held_ip, held_segment_id) or null.
 * An error such as a concurrent network delete makes the statement run again request by request.
 */
export async function createImmediatePorts(q: Queryable, items: NewPort[]): Promise<(Row | null)[]> {
  return madeOrNull(await insertDrawingMacs(items, (waiting) => runTakingAddresses(q, IMMEDIATE, waiting)));
}

/** The ports of deferredEligible requests, in one statement: per request its new row or null. */
export async function createDeferredPorts(q: Queryable, items: NewPort[]): Promise<(Row | null)[]> {
  return madeOrNull(await insertDrawingMacs(items, (waiting) => runCreation(q, DEFERRED, waiting)));
}

/**
 * The ports of boundEligible requests, made bound with their address, in one statement: per
 * request its new row (with held_subnet_id, held_ip, held_segment_id) or null. Errors as
 * createImmediatePorts.
 */
export async function createBoundPorts(q: Queryable, items: NewPort[]): Promise<(Row | null)[]> {
  return madeOrNull(await insertDrawingMacs(items, (waiting) => runTakingAddresses(q, BOUND, waiting)));
}

// ---- the first bind of a deferred port ------------------------------------------------------

/**
 * Binds of deferred ports holding no address, on routed networks, to hosts that reach one of
 * their segments with a subnet. As bindPort does it, port by port: the port (visible to its
 * caller, on a visible network) is locked, the first such segment is its target, and the ports
 * aiming at one segment get its addresses as ipam.ts orders them, one each, in request order; the
 * address is held for the port and the port is bound. A bind without a row: any other case, or
 * not enough addresses of its segment unlocked.
 */
const BIND_DEFERRED_SQL = `WITH r AS (
    SELECT * FROM unnest($1::int[], $2::uuid[], $3::text[], $4::text[], $5::boolean[], $6::text[])
      AS r(k, port_id, host, profile, is_admin, caller_project)),
  p AS MATERIALIZED (
    SELECT r.k, p.id, p.network_id, r.host, r.profile FROM r JOIN ports p ON p.id = r.port_id
    WHERE ${portVisibleSql("p", callerColumns("r"))} AND p.ip_allocation = 'deferred'
      AND NOT EXISTS (SELECT 1 FROM ip_allocations a WHERE a.port_id = p.id)
      AND EXISTS (SELECT 1 FROM networks n WHERE n.id = p.network_id AND ${networkVisibleSql("n", callerColumns("r"))})
    ORDER BY p.id FOR UPDATE OF p),
  target AS MATERIALIZED (
    SELECT p.k, p.id AS port_id,
      (${reachableSegmentsSql("p.network_id", hostPhysnetsSql("p.host"), { withSubnet: true })} LIMIT 1) AS segment_id
    FROM p WHERE ${routedNetworkSql("p.network_id")}),
  need AS (SELECT segment_id AS key, count(*) AS c FROM target WHERE segment_id IS NOT NULL GROUP BY segment_id),
  picks AS MATERIALIZED (${freeAddressesSql("need", (sn, key) => `${sn}.segment_id = ${key}`)}),
  assign AS MATERIALIZED (
    SELECT t.k, t.port_id, t.segment_id, picks.subnet_id, picks.ip
    FROM (SELECT k, port_id, segment_id, row_number() OVER (PARTITION BY segment_id ORDER BY k) AS rn
          FROM target WHERE segment_id IS NOT NULL) t
    JOIN picks ON picks.key = t.segment_id AND picks.rn = t.rn),
  ${takeAndHoldSql("assign")}
  UPDATE ports SET ${boundPortSetSql("p.host", "p.profile", "a.segment_id")}
  FROM held JOIN p ON p.id = held.port_id JOIN assign a ON a.k = p.k
  WHERE ports.id = held.port_id
  RETURNING ${cols("ports", "ports")}, p.k AS bind_k, held.subnet_id AS held_subnet_id, held.ip AS held_ip,
    a.segment_id AS held_segment_id`;

export interface DeferredBind {
  req: { portId: string; host: string; bindingProfile: Record<string, string> };
  caller: Caller;
}

/** Per bind, the bound port's row (with held_subnet_id, held_ip, held_segment_id) or null. */
export async function bindDeferredPorts(q: Queryable, binds: DeferredBind[]): Promise<(Row | null)[]> {
  const values: unknown[][] = [];
  const seen = new Set<string>();
  binds.forEach(({ req, caller }, k) => {
    const id = req.portId.toLowerCase();
    // The same port twice in one statement would get two addresses: a repeat takes the transaction.
    if (!req.host || !isUuid(id) || seen.has(id)) return;
    seen.add(id);
    values.push([
      k,
      id,
      req.host,
      JSON.stringify(req.bindingProfile ?? {}),
      caller.isAdmin,
      caller.projectId,
    ]);
  });
  const result: (Row | null)[] = binds.map(() => null);
  if (!values.length) return result;
  const rows = await q.query(BIND_DEFERRED_SQL, columns(values, 6), { name: "net_bind_deferred_ports" });
  for (const row of rows) result[Number(row.bind_k)] = row;
  return result;
}
