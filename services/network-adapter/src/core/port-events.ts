// The events a port's change publishes (after the commit, from the outbox), and the placement
// work it causes, for every path that changes ports.
import { PortChange, PortChangedSchema } from "@stratus/contracts/events/v1";
import { Subjects } from "@stratus/runtime";
import type { Outbox, Tx } from "./context.js";
import { allocatedEvent } from "./ipam.js";
import { type PortRec, portFromRow } from "./model.js";
import { reservesAddresses } from "./rules.js";

export function portEvent(tx: Pick<Tx, "out">, change: PortChange, port: PortRec): void {
  const subject = {
    [PortChange.CREATED]: Subjects.portCreated,
    [PortChange.BOUND]: Subjects.portBound,
    [PortChange.UNBOUND]: Subjects.portUnbound,
    [PortChange.DELETED]: Subjects.portDeleted,
    [PortChange.UPDATED]: Subjects.portUpdated,
    [PortChange.UNSPECIFIED]: Subjects.portUpdated,
  }[change];
  tx.out.add(subject, PortChangedSchema, {
    change,
    portId: port.id,
    networkId: port.networkId,
    projectId: port.projectId,
    deviceId: port.deviceId,
    host: port.bindingHostId,
    ipAddresses: port.fixedIps.map((f) => f.ipAddress),
    status: port.status ?? "",
  });
}

/** Queues the segments of these subnets for placement when the port's addresses are reserved there. */
export async function noteReservedChange(tx: Tx, owner: string, subnetIds: string[]): Promise<void> {
  if (!reservesAddresses(owner) || !subnetIds.length) return;
  const rows = await tx.q.query<{ segment_id: string }>(
    "SELECT DISTINCT segment_id FROM subnets WHERE id = ANY($1::uuid[]) AND segment_id IS NOT NULL",
    [subnetIds],
  );
  for (const r of rows) tx.out.segments.add(r.segment_id);
}

/**
 * The port of a row that took one address in its statement (held_subnet_id, held_ip,
 * held_segment_id), with its events in out: the address allocated, then `change` (as the
 * transactional path records them).
 */
export function portWithHeldAddress(
  row: Record<string, unknown>,
  out: Outbox,
  change: PortChange,
): { port: PortRec; segmentId: string | null } {
  const subnetId = String(row.held_subnet_id);
  const segmentId = row.held_segment_id === null ? null : String(row.held_segment_id);
  const ip = Number(row.held_ip);
  const port = portFromRow(row, [{ subnetId, ip }]);
  allocatedEvent(out, port.id, subnetId, segmentId, ip);
  if (change === PortChange.CREATED && reservesAddresses(port.deviceOwner) && segmentId) {
    out.segments.add(segmentId);
  }
  portEvent({ out }, change, port);
  return { port, segmentId };
}

/**
 * The port of a row a creation statement inserted, with its events in out: its address allocated
 * (when it took one), then created.
 */
export function createdPortOfRow(row: Record<string, unknown>, out: Outbox): PortRec {
  if (row.held_ip !== undefined) return portWithHeldAddress(row, out, PortChange.CREATED).port;
  const port = portFromRow(row, []);
  portEvent({ out }, PortChange.CREATED, port);
  return port;
}

/**
 * The port of a row a creation statement inserted already bound (with the address it took), with
 * its events in out as the transactional path records a creation followed by a bind: created
 * (the port as made, before the bind: no host, no address), the address allocated, bound.
 */
export function createdBoundPortOfRow(row: Record<string, unknown>, out: Outbox): PortRec {
  portEvent({ out }, PortChange.CREATED, { ...portFromRow(row, []), bindingHostId: "" });
  return portWithHeldAddress(row, out, PortChange.BOUND).port;
}
