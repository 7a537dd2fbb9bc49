// Binding a port to a compute host, and unbinding it. On a routed network the host's segment
// decides the address: a deferred port gets it now, a re-bind to a host of another segment moves
// it (our design; upstream answers 409 there), a re-bind on the same segment keeps it. This is
// the transactional path, which serves every bind, and CreatePort's with a host (createAndBindPort);
// the first bind of a deferred port this process made, and a routed network's port created with a
// host, are usually one statement with the others of their turn (port-statements.ts).
import { PortChange } from "@stratus/contracts/events/v1";
import { type CreatePortRequest, IpAllocation } from "@stratus/contracts/network/v1";
import { invalidInput, notFound, StratusError } from "@stratus/runtime";
import { cols } from "./columns.js";
import type { Tx } from "./context.js";
import { checkId } from "./ids.js";
import { allocateFromAny, networkSubnetsJsonSql, releasePortIps, type SubnetRow } from "./ipam.js";
import { jsonColumn, type PortRec, portFromRow } from "./model.js";
import { portEvent } from "./port-events.js";
import { createPort, getPort } from "./ports.js";
import {
  boundPortSetSql,
  callerParams,
  hostPhysnetsSql,
  networkVisibleSql,
  portVisibleSql,
  reachableSegmentsSql,
  revisedSql,
  routedNetworkSql,
} from "./rules.js";

/**
 * What binding needs, read in one statement that also locks the port: the port and its
 * addresses, whether its network is visible to the caller and routed, its subnets, the host's
 * physical networks, and the segments the host reaches (all, and those with a subnet), in the
 * order binding prefers them.
 */
async function bindContext(tx: Tx, portId: string, host: string) {
  const pid = checkId(portId, "Port");
  const caller = callerParams(tx.caller, 3);
  const physnets = hostPhysnetsSql("$2");
  const [row] = await tx.q.query(
    `SELECT ${cols("ports", "p")},
       (SELECT coalesce(json_agg(json_build_object('subnetId', a.subnet_id, 'ip', a.ip)), '[]'::json)
          FROM ip_allocations a WHERE a.port_id = p.id) AS bind_ips,
       EXISTS (SELECT 1 FROM networks n WHERE n.id = p.network_id AND ${networkVisibleSql("n", caller.sql)}) AS bind_network_visible,
       ${routedNetworkSql("p.network_id")} AS bind_routed,
       ARRAY(${reachableSegmentsSql("p.network_id", physnets, { withSubnet: false })})::text[] AS bind_reachable,
       ARRAY(${reachableSegmentsSql("p.network_id", physnets, { withSubnet: true })})::text[] AS bind_targets,
       ${networkSubnetsJsonSql("p.network_id")} AS bind_subnets,
       ${physnets} AS bind_physnets
     FROM ports p WHERE p.id = $1 AND ${portVisibleSql("p", caller.sql)}
     FOR UPDATE OF p`,
    [pid, host, ...caller.params],
  );
  if (!row) throw notFound(`Port ${portId} could not be found`);
  if (!row.bind_network_visible) throw notFound(`Network ${String(row.network_id)} could not be found`);
  const ips = jsonColumn<{ subnetId: string; ip: string | number }[]>(row.bind_ips).map((i) => ({
    subnetId: i.subnetId,
    ip: Number(i.ip),
  }));
  return {
    port: portFromRow(row, ips),
    ips,
    routed: Boolean(row.bind_routed),
    /** The segments the host reaches. */
    reachable: row.bind_reachable as string[],
    /** Those with a subnet: where a port of a routed network may be bound. */
    targets: row.bind_targets as string[],
    subnets: jsonColumn<SubnetRow[]>(row.bind_subnets),
    physnets: row.bind_physnets as string[],
  };
}

/**
 * How a bind refuses a host that reaches no segment of the port's network, or none where its
 * addresses work: BindPort (the conductor's call) says invalid_input; the Networking API's port
 * update says conflict, as Neutron's HostNotConnectedToAnySegment and HostNotCompatibleWithFixedIps.
 */
export type BindRefusal = "invalid_input" | "conflict";

export async function bindPort(
  tx: Tx,
  req: { portId: string; host: string; bindingProfile: Record<string, string> },
  opts: { refusal?: BindRefusal } = {},
): Promise<{ port: PortRec; segmentId: string; routed: boolean }> {
  if (!req.host) throw invalidInput("host is required to bind a port");
  const refuse = (message: string) => new StratusError(opts.refusal ?? "invalid_input", message);
  const { port, routed, reachable, targets, subnets, physnets, ...ctx } = await bindContext(
    tx,
    req.portId,
    req.host,
  );
  let ips = ctx.ips;
  let segmentId: string;
  if (routed) {
    if (!targets.length) {
      throw refuse(
        `Host ${req.host} is not connected to any segments on routed provider network '${port.networkId}'.  It should be connected to one.`,
      );
    }
    const held = port.fixedIps.map((f) => subnets.find((s) => s.id === f.subnetId)!);
    const heldSegment = held[0]?.segment_id ?? null;
    if (held.length && heldSegment && targets.includes(heldSegment)) {
      segmentId = heldSegment;
    } else if (held.length && port.ipAllocation !== IpAllocation.DEFERRED) {
      throw refuse(
        `Host ${req.host} is not connected to a segment where the existing fixed_ips on port ${port.id} will function given the routed network topology.`,
      );
    } else {
      // Deferred port with no address yet, or moving to another segment: (re)allocate there.
      if (held.length) {
        await releasePortIps(tx, port.id);
        ips = [];
      }
      segmentId = targets[0]!;
      if (port.ipAllocation !== IpAllocation.NONE) {
        const got = await allocateFromAny(
          tx,
          subnets.filter((s) => s.segment_id === segmentId),
          port.id,
          port.networkId,
        );
        ips = [...ips, { subnetId: got.subnet.id, ip: got.ip }];
      }
    }
  } else {
    if (!reachable.length) {
      throw refuse(
        `Host ${req.host} cannot reach network ${port.networkId}: none of its physical networks (${physnets.join(", ") || "none"}) carries a segment of it`,
      );
    }
    segmentId = reachable[0]!;
    if (port.ipAllocation === IpAllocation.DEFERRED && !port.fixedIps.length && subnets.length) {
      const got = await allocateFromAny(tx, subnets, port.id, port.networkId);
      ips = [...ips, { subnetId: got.subnet.id, ip: got.ip }];
    }
  }
  const [updated] = await tx.q.query(
    `UPDATE ports SET ${boundPortSetSql("$2", "$3", "$4::uuid")} WHERE id = $1 RETURNING ${cols("ports")}`,
    [port.id, req.host, JSON.stringify(req.bindingProfile ?? {}), segmentId],
  );
  const bound = portFromRow(updated!, ips);
  portEvent(tx, PortChange.BOUND, bound);
  return { port: bound, segmentId, routed };
}

/**
 * CreatePort's transactional path: the port made, and bound at once when the request names a
 * host (a host the port cannot be bound to refuses the creation, as Neutron's conflict). Also
 * whether its network is routed, when the bind found out.
 */
export async function createAndBindPort(
  tx: Tx,
  req: CreatePortRequest,
): Promise<{ port: PortRec; routed?: boolean }> {
  const made = await createPort(tx, req);
  if (!req.bindingHostId) return { port: made };
  const { port, routed } = await bindPort(
    tx,
    { portId: made.id, host: req.bindingHostId, bindingProfile: req.bindingProfile },
    { refusal: "conflict" },
  );
  return { port, routed };
}

export async function unbindPort(tx: Tx, req: { portId: string; clearDevice: boolean }): Promise<PortRec> {
  const port = await getPort(tx, req.portId, { forUpdate: true });
  if (port.ipAllocation === IpAllocation.DEFERRED) await releasePortIps(tx, port.id);
  await tx.q.query(
    `UPDATE ports SET binding_host_id = '', binding_vif_type = 'unbound', binding_vif_details = '{}',
       binding_profile = '{}', binding_segment_id = NULL, status = 'DOWN',
       device_id = CASE WHEN $2 THEN '' ELSE device_id END,
       device_owner = CASE WHEN $2 THEN '' ELSE device_owner END, ${revisedSql("ports")} WHERE id = $1`,
    [port.id, req.clearDevice],
  );
  const unbound = await getPort(tx, port.id);
  portEvent(tx, PortChange.UNBOUND, unbound);
  return unbound;
}
