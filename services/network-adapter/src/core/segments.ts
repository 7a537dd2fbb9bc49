// Segments: the layer-2 pieces of a network (a VLAN or flat network on a physical network, or a
// tunnel). A network has one by default; several (or subnets bound to them) make it routed.
import { randomUUID } from "node:crypto";
import type { Segment } from "@stratus/contracts/network/v1";
import { conflict, invalidInput, notFound, StratusError } from "@stratus/runtime";
import { isUniqueViolation, type Tx } from "./context.js";
import { checkId } from "./ids.js";
import { type SegmentRec, segmentOut } from "./model.js";
import { getNetwork, visibleNetworkSql } from "./network-access.js";

const NETWORK_TYPES = new Set(["flat", "vlan", "vxlan", "geneve"]);

function checkSegmentSpec(s: Pick<Segment, "networkType" | "physicalNetwork" | "segmentationId">): void {
  if (!NETWORK_TYPES.has(s.networkType)) {
    throw invalidInput(`network_type '${s.networkType}' is not one of flat, vlan, vxlan, geneve`);
  }
  if ((s.networkType === "flat" || s.networkType === "vlan") && !s.physicalNetwork) {
    throw invalidInput(`a ${s.networkType} segment needs a physical_network`);
  }
  if ((s.networkType === "vxlan" || s.networkType === "geneve") && s.physicalNetwork) {
    throw invalidInput(`a ${s.networkType} segment has no physical_network`);
  }
  if (s.networkType === "vlan" && (s.segmentationId < 1 || s.segmentationId > 4094)) {
    throw invalidInput(`vlan segmentation_id ${s.segmentationId} is outside 1..4094`);
  }
  if (s.networkType === "flat" && s.segmentationId)
    throw invalidInput("a flat segment has no segmentation_id");
}

/** A segment of the network, validated; a tunnel without a segmentation id gets the next one. */
export async function insertSegment(
  tx: Tx,
  networkId: string,
  s: Pick<Segment, "name" | "networkType" | "physicalNetwork" | "segmentationId">,
): Promise<SegmentRec> {
  checkSegmentSpec(s);
  let segmentationId = s.segmentationId;
  if ((s.networkType === "vxlan" || s.networkType === "geneve") && !segmentationId) {
    const [row] = await tx.q.query<{ v: string }>("SELECT nextval('tunnel_ids') AS v");
    segmentationId = Number(row!.v);
  }
  const id = randomUUID();
  try {
    const [row] = await tx.q.query(
      `INSERT INTO segments (id, network_id, name, network_type, physical_network, segmentation_id)
       VALUES ($1, $2, $3, $4, $5, $6) RETURNING *`,
      [id, networkId, s.name, s.networkType, s.physicalNetwork, segmentationId],
    );
    return segmentOut(row!);
  } catch (err) {
    if (isUniqueViolation(err)) {
      throw conflict(
        `${s.networkType} segment ${s.physicalNetwork}${segmentationId ? `:${segmentationId}` : ""} is already in use`,
      );
    }
    throw err;
  }
}

export async function getSegment(tx: Tx, id: string): Promise<SegmentRec> {
  const sid = checkId(id, "Segment");
  const [row] = await tx.q.query("SELECT * FROM segments WHERE id = $1", [sid]);
  if (!row) throw notFound(`Segment ${id} could not be found`);
  await getNetwork(tx, String(row.network_id)); // visibility
  return segmentOut(row);
}

export async function createSegment(tx: Tx, s: Segment): Promise<SegmentRec> {
  if (!tx.caller.isAdmin) throw new StratusError("forbidden", "segments are admin-only");
  const net = await getNetwork(tx, s.networkId, { forUpdate: true });
  const seg = await insertSegment(tx, net.id, s);
  if (seg.physicalNetwork) tx.out.segments.add(seg.id);
  return seg;
}

export async function listSegments(tx: Tx, networkId: string, physnet: string): Promise<SegmentRec[]> {
  const params: unknown[] = [];
  const where = ["true"];
  if (networkId) {
    params.push((await getNetwork(tx, networkId)).id);
    where.push(`network_id = $${params.length}`);
  } else if (!tx.caller.isAdmin) {
    const vis = visibleNetworkSql(tx, "n", params.length + 1);
    params.push(...vis.params);
    where.push(`network_id IN (SELECT id FROM networks n WHERE ${vis.sql})`);
  }
  if (physnet) {
    params.push(physnet);
    where.push(`physical_network = $${params.length}`);
  }
  const rows = await tx.q.query(
    `SELECT * FROM segments WHERE ${where.join(" AND ")} ORDER BY created_at, id`,
    params,
  );
  return rows.map(segmentOut);
}

export async function deleteSegment(tx: Tx, id: string): Promise<void> {
  if (!tx.caller.isAdmin) throw new StratusError("forbidden", "segments are admin-only");
  const seg = await getSegment(tx, id);
  await tx.q.query("SELECT 1 FROM networks WHERE id = $1 FOR UPDATE", [seg.networkId]);
  const subs = await tx.q.query("SELECT id FROM subnets WHERE segment_id = $1", [seg.id]);
  if (subs.length) {
    throw conflict(
      `Segment '${seg.id}' cannot be deleted: The segment is still associated with subnet(s) ${subs.map((s) => String(s.id)).join(", ")}.`,
    );
  }
  const bound = await tx.q.query("SELECT id FROM ports WHERE binding_segment_id = $1 LIMIT 1", [seg.id]);
  if (bound.length)
    throw conflict(`Segment '${seg.id}' cannot be deleted: port ${String(bound[0]!.id)} is bound on it.`);
  await tx.q.query("DELETE FROM segments WHERE id = $1", [seg.id]);
  tx.out.removedSegments.add(seg.id);
}
