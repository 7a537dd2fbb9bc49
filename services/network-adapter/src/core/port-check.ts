// CheckAndUpdatePorts, the compute agent's call before it plugs a server's ports: each port must
// exist, belong to the server, be bound to this host and hold its addresses; then all of them go
// ACTIVE and the driver gets what it needs. It allocates nothing, and one failing port fails the
// call. One statement serves the calls of many hosts at once (PortService gathers them per turn).
import type { MessageInitShape } from "@bufbuild/protobuf";
import { PortChange } from "@stratus/contracts/events/v1";
import type { PortDetailsSchema } from "@stratus/contracts/network/v1";
import { invalidInput, type Queryable, StratusError } from "@stratus/runtime";
import { cols } from "./columns.js";
import type { Outbox } from "./context.js";
import { checkId } from "./ids.js";
import { IP_ALLOCATION_NAMES, jsonColumn, portFromRow } from "./model.js";
import { portEvent } from "./port-events.js";
import { revisedSql, VIF_DETAILS, VIF_SET_SQL, VIF_TYPE } from "./rules.js";
import { columns } from "./unnest.js";

type Row = Record<string, unknown>;

export type PortDetails = MessageInitShape<typeof PortDetailsSchema>;

/**
 * The statement for several calls (no transaction around it): lock the calls' ports in id order
 * and read them with their addresses, segment and network MTU; judge each port for its call
 * (on_server, on_host, addressed); and mark a call's ports ACTIVE only if every one of them is
 * there and passes (each call all or nothing on its own). The rows come back as they were before
 * the update, with their call (k), their verdicts, and whether that call's ports fit.
 */
const CHECK_AND_UPDATE_SQL = `WITH want AS (SELECT * FROM unnest($1::int[], $2::uuid[]) AS w(k, id)),
req AS (SELECT * FROM unnest($3::int[], $4::text[], $5::text[], $6::int[]) AS r(k, server_id, host, n)),
locked AS MATERIALIZED (
  SELECT want.k, ${cols("ports", "p")}, n.mtu AS net_mtu, s.network_type AS seg_network_type, s.physical_network AS seg_physical_network,
    s.segmentation_id AS seg_segmentation_id,
    (SELECT coalesce(json_agg(json_build_object('subnet_id', a.subnet_id, 'ip', a.ip)), '[]'::json)
     FROM ip_allocations a WHERE a.port_id = p.id) AS fixed
  FROM want JOIN ports p ON p.id = want.id LEFT JOIN networks n ON n.id = p.network_id
    LEFT JOIN segments s ON s.id = p.binding_segment_id
  ORDER BY p.id FOR UPDATE OF p),
judged AS MATERIALIZED (
  SELECT l.k, l.id, l.device_id = req.server_id AS on_server, l.binding_host_id = req.host AS on_host,
    (l.ip_allocation = 'none' OR json_array_length(l.fixed) > 0) AS addressed
  FROM locked l JOIN req ON req.k = l.k),
ok AS MATERIALIZED (SELECT req.k FROM req LEFT JOIN judged j ON j.k = req.k
  GROUP BY req.k, req.n
  HAVING count(j.id) = req.n AND coalesce(bool_and(j.on_server AND j.on_host AND j.addressed), false)),
u AS (UPDATE ports SET status = 'ACTIVE', ${VIF_SET_SQL}, ${revisedSql("ports")}
  FROM locked JOIN ok ON ok.k = locked.k WHERE ports.id = locked.id RETURNING ports.id)
SELECT locked.*, j.on_server, j.on_host, j.addressed, EXISTS (SELECT 1 FROM ok WHERE ok.k = locked.k) AS fits
FROM locked JOIN judged j ON j.k = locked.k AND j.id = locked.id`;

/** One CheckAndUpdatePorts call, checked for what needs no database, ready for the statement. */
export interface PortCheck {
  req: { serverId: string; host: string; portIds: string[] };
  /** The ids asked for, each once, in the order asked. */
  ids: string[];
  /** The ids that are uuids, as asked. */
  valid: string[];
  /** The valid ids in lower case, each once, sorted: what the statement locks. */
  ordered: string[];
  problems: string[];
}

export function preparePortCheck(req: PortCheck["req"]): PortCheck {
  if (!req.serverId || !req.host) throw invalidInput("server_id and host are required");
  const ids = [...new Set(req.portIds)];
  const problems: string[] = [];
  const valid = ids.filter((id) => {
    try {
      checkId(id, "Port");
      return true;
    } catch {
      problems.push(`port ${id} does not exist`);
      return false;
    }
  });
  const ordered = [...new Set(valid.map((i) => i.toLowerCase()))].sort();
  return { req, ids, valid, ordered, problems };
}

/** The statement for several calls at once: each call's rows, in the order of the calls. */
export async function checkAndUpdateRows(q: Queryable, checks: PortCheck[]): Promise<Row[][]> {
  const wanted: unknown[][] = [];
  const calls: unknown[][] = [];
  checks.forEach((c, i) => {
    if (!c.ordered.length) return;
    for (const pid of c.ordered) wanted.push([i, pid]);
    // An id that is not a uuid is already a problem: nothing of that call may be updated.
    calls.push([i, c.req.serverId, c.req.host, c.problems.length ? -1 : c.ordered.length]);
  });
  const result: Row[][] = checks.map(() => []);
  if (!wanted.length) return result;
  const rows = await q.query(CHECK_AND_UPDATE_SQL, [...columns(wanted, 2), ...columns(calls, 4)], {
    name: "net_check_and_update_ports",
  });
  for (const r of rows) result[Number(r.k)]!.push(r);
  return result;
}

/**
 * The statement's verdict on a call's rows, in words: its ports' details (events in out), or the
 * refusal listing every problem (not_found if a port is missing, port_in_use if one belongs to
 * another device, else invalid_input).
 */
export function portCheckDetails(out: Outbox, check: PortCheck, rows: Row[]): PortDetails[] {
  const { req, ids, valid } = check;
  const problems = [...check.problems];
  const byId = new Map(
    rows.map((r) => {
      const fixed = jsonColumn<{ subnet_id: string; ip: string | number }[]>(r.fixed);
      const port = portFromRow(
        r,
        fixed.map((f) => ({ subnetId: String(f.subnet_id), ip: Number(f.ip) })),
      );
      return [port.id, { port, row: r }] as const;
    }),
  );
  let kind: "not_found" | "port_in_use" | "invalid_input" = problems.length ? "not_found" : "invalid_input";
  for (const id of valid) {
    const found = byId.get(id.toLowerCase());
    if (!found) {
      problems.push(`port ${id} does not exist`);
      kind = "not_found";
      continue;
    }
    const { port: p, row } = found;
    if (!row.on_server) {
      problems.push(
        p.deviceId
          ? `port ${p.id} belongs to device ${p.deviceId}, not server ${req.serverId}`
          : `port ${p.id} is not claimed by server ${req.serverId} (no device_id)`,
      );
      if (kind !== "not_found" && p.deviceId) kind = "port_in_use";
    }
    if (!row.on_host) {
      problems.push(
        p.bindingHostId
          ? `port ${p.id} is bound to host ${p.bindingHostId}, not ${req.host}`
          : `port ${p.id} is not bound to any host (expected ${req.host})`,
      );
    } else if (!row.addressed) {
      problems.push(`port ${p.id} has no IP address (ip_allocation ${IP_ALLOCATION_NAMES[p.ipAllocation]})`);
    }
  }
  if (problems.length) throw new StratusError(kind, `CheckAndUpdatePorts refused: ${problems.join("; ")}`);
  if (rows.length && !rows[0]!.fits) {
    // Every port passed, so the statement updated them; a difference is a bug, not a client error.
    throw new StratusError("internal", "CheckAndUpdatePorts: the ports changed while being checked");
  }
  const details: PortDetails[] = [];
  for (const id of ids) {
    const { port: p, row } = byId.get(id.toLowerCase())!;
    const active = {
      ...p,
      status: "ACTIVE",
      bindingVifType: VIF_TYPE,
      bindingVifDetails: { ...VIF_DETAILS },
    };
    portEvent({ out }, PortChange.UPDATED, active);
    const segment = row.seg_network_type !== null && row.seg_network_type !== undefined;
    details.push({
      portId: p.id,
      macAddress: p.macAddress ?? "",
      fixedIps: p.fixedIps,
      networkId: p.networkId,
      segmentId: p.bindingSegmentId,
      networkType: segment ? String(row.seg_network_type) : "",
      physicalNetwork: segment ? String(row.seg_physical_network) : "",
      segmentationId: segment ? Number(row.seg_segmentation_id) : 0,
      vifType: VIF_TYPE,
      vifDetails: VIF_DETAILS,
      mtu: Number(row.net_mtu ?? 0),
    });
  }
  return details;
}
