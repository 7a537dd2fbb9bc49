// Segments: the layer-2 pieces of a network (a VLAN or flat network on a physical network, or a
// tunnel). A network has one by default; several (or subnets bound to them) make it routed.
// Neutron's rules: valid ids per type (vlan 1–4094, vxlan and geneve 1–16777215, flat none), an id
// used once per physical network and type (the unique indexes of migrations 001 and 006 judge),
// only name and description change, and a segment with subnets or bound ports stays. A network's
// last segment may be deleted on its own, as in Neutron; it goes with its network otherwise.
import { randomUUID } from "node:crypto";
import type { ListSegmentsRequest, Segment, UpdateSegmentRequest } from "@stratus/contracts/network/v1";
import { conflict, invalidInput, notFound, StratusError } from "@stratus/runtime";
import { cols } from "./columns.js";
import type { Tx } from "./context.js";
import { checkId } from "./ids.js";
import { SEGMENT_LIST } from "./list-fields.js";
import { planList, SqlParams } from "./list-query.js";
import { loadSegments, type SegmentRec, segmentOut } from "./model.js";
import { getNetwork, visibleNetworkSql } from "./network-access.js";
import { segmentEvent } from "./resource-events.js";
import { revisedSql } from "./rules.js";

type SegmentSpec = Pick<
  Segment,
  "name" | "description" | "networkType" | "physicalNetwork" | "segmentationId"
>;

/** Segmentation ids per network type (none: the type has no id). */
const SEGMENTATION_IDS: Record<string, { min: number; max: number } | undefined> = {
  flat: undefined,
  vlan: { min: 1, max: 4094 },
  vxlan: { min: 1, max: 16_777_215 },
  geneve: { min: 1, max: 16_777_215 },
};

const isTunnel = (type: string) => type === "vxlan" || type === "geneve";

function checkSegmentSpec(s: SegmentSpec): void {
  if (!(s.networkType in SEGMENTATION_IDS)) {
    throw invalidInput(`Invalid input for operation: network_type value '${s.networkType}' not supported.`);
  }
  if (s.networkType === "flat" && !s.physicalNetwork) {
    throw invalidInput("Invalid input for operation: physical_network required for flat provider network.");
  }
  if (s.networkType === "vlan" && !s.physicalNetwork) {
    throw invalidInput("a vlan segment needs a physical_network");
  }
  if (isTunnel(s.networkType) && s.physicalNetwork) {
    throw invalidInput(
      `Invalid input for operation: provider:physical_network specified for ${s.networkType} network.`,
    );
  }
  const range = SEGMENTATION_IDS[s.networkType];
  if (!range && s.segmentationId) {
    throw invalidInput("Invalid input for operation: segmentation_id prohibited for flat provider network.");
  }
  // A tunnel without an id gets the next free one.
  const chosenLater = isTunnel(s.networkType) && s.segmentationId === 0;
  if (range && !chosenLater && (s.segmentationId < range.min || s.segmentationId > range.max)) {
    throw invalidInput(
      `${s.networkType} segmentation_id ${s.segmentationId} is outside ${range.min}..${range.max}`,
    );
  }
}

/** The segments of a new network: each valid, none twice (Neutron's multi-provider rule). */
export function checkSegmentSpecs(specs: SegmentSpec[]): void {
  const seen = new Set<string>();
  for (const s of specs) {
    checkSegmentSpec(s);
    const key = `${s.networkType}/${s.physicalNetwork}/${s.segmentationId}`;
    if (seen.has(key) && !(isTunnel(s.networkType) && !s.segmentationId)) {
      throw invalidInput("Invalid input for operation: Duplicate segment entry in request.");
    }
    seen.add(key);
  }
}

/** Neutron's refusal of a segment whose id (or flat physical network) is taken. */
function segmentInUse(s: SegmentSpec, segmentationId: number): StratusError {
  if (s.networkType === "flat") {
    return conflict(`Unable to create the flat network. Physical network ${s.physicalNetwork} is in use.`);
  }
  if (s.networkType === "vlan") {
    return conflict(
      `Unable to create the network. The VLAN ${segmentationId} on physical network ${s.physicalNetwork} is in use.`,
    );
  }
  return conflict(`Unable to create the network. The tunnel ID ${segmentationId} is in use.`);
}

/** Draws of a tunnel id before giving up (an id taken explicitly is passed over). */
const TUNNEL_ID_DRAWS = 100;

/** The network's row is locked (being made, or FOR UPDATE): the next index is this insert's. */
const INSERT_SEGMENT_SQL = `INSERT INTO segments (id, network_id, name, description, network_type, physical_network,
    segmentation_id, segment_index)
  VALUES ($1, $2, $3, $4, $5, $6, $7,
    (SELECT coalesce(max(segment_index) + 1, 0) FROM segments WHERE network_id = $2))
  ON CONFLICT DO NOTHING RETURNING ${cols("segments")}`;

/** A segment of the network, validated; a tunnel without a segmentation id gets the next free one. */
export async function insertSegment(tx: Tx, networkId: string, s: SegmentSpec): Promise<SegmentRec> {
  checkSegmentSpec(s);
  const auto = isTunnel(s.networkType) && !s.segmentationId;
  for (let draw = 0; draw < (auto ? TUNNEL_ID_DRAWS : 1); draw++) {
    let segmentationId = s.segmentationId;
    if (auto) {
      const [row] = await tx.q.query<{ v: string }>("SELECT nextval('tunnel_ids') AS v");
      segmentationId = Number(row!.v);
      if (segmentationId > SEGMENTATION_IDS[s.networkType]!.max) break;
    }
    const [row] = await tx.q.query(INSERT_SEGMENT_SQL, [
      randomUUID(),
      networkId,
      s.name,
      s.description,
      s.networkType,
      s.physicalNetwork,
      segmentationId,
    ]);
    if (row) {
      const seg = segmentOut(row);
      segmentEvent(tx.out, "created", seg);
      return seg;
    }
    if (!auto) throw segmentInUse(s, segmentationId);
  }
  throw new StratusError(
    "unavailable",
    "Unable to create the network. No tenant network is available for allocation.",
  );
}

export async function getSegment(tx: Tx, id: string): Promise<SegmentRec> {
  const sid = checkId(id, "Segment");
  const [seg] = await loadSegments(tx.q, "s.id = $1", [sid]);
  if (!seg) throw notFound(`Segment ${id} could not be found.`);
  await getNetwork(tx, seg.networkId); // visibility
  return seg;
}

function adminOnly(tx: Tx): void {
  if (!tx.caller.isAdmin) throw new StratusError("forbidden", "segments are admin-only");
}

export async function createSegment(tx: Tx, s: Segment): Promise<SegmentRec> {
  adminOnly(tx);
  const net = await getNetwork(tx, s.networkId, { forUpdate: true });
  const seg = await insertSegment(tx, net.id, s);
  if (seg.physicalNetwork) tx.out.segments.add(seg.id);
  return seg;
}

export async function listSegments(
  tx: Tx,
  req: ListSegmentsRequest,
): Promise<{ items: SegmentRec[]; hasMore: boolean }> {
  const params = new SqlParams();
  const where: string[] = [];
  if (req.networkId) {
    where.push(`s.network_id = ${params.add((await getNetwork(tx, req.networkId)).id)}`);
  } else if (!tx.caller.isAdmin) {
    const vis = visibleNetworkSql(tx, "n", params.next);
    params.addAll(vis.params);
    where.push(`s.network_id IN (SELECT id FROM networks n WHERE ${vis.sql})`);
  }
  if (req.physicalNetwork) where.push(`s.physical_network = ${params.add(req.physicalNetwork)}`);
  const plan = await planList(tx.q, SEGMENT_LIST, req.query, where, params);
  return plan.page(await loadSegments(tx.q, plan.where, params.values, plan.order));
}

export async function updateSegment(tx: Tx, req: UpdateSegmentRequest): Promise<SegmentRec> {
  adminOnly(tx);
  const seg = await getSegment(tx, req.id);
  await tx.q.query(
    `UPDATE segments SET name = COALESCE($2, name), description = COALESCE($3, description), ${revisedSql("segments")}
     WHERE id = $1`,
    [seg.id, req.name ?? null, req.description ?? null],
  );
  segmentEvent(tx.out, "updated", seg);
  return getSegment(tx, seg.id);
}

export async function deleteSegment(tx: Tx, id: string): Promise<void> {
  adminOnly(tx);
  const seg = await getSegment(tx, id);
  await tx.q.query("SELECT 1 FROM networks WHERE id = $1 FOR UPDATE", [seg.networkId]);
  const subs = await tx.q.query<{ id: string }>("SELECT id FROM subnets WHERE segment_id = $1 ORDER BY id", [
    seg.id,
  ]);
  if (subs.length) {
    throw conflict(
      `Segment '${seg.id}' cannot be deleted: The segment is still associated with subnet(s) ${subs.map((s) => s.id).join(", ")}.`,
    );
  }
  const [bound] = await tx.q.query<{ n: string }>(
    "SELECT count(*) AS n FROM ports WHERE binding_segment_id = $1",
    [seg.id],
  );
  if (Number(bound!.n) > 0) {
    throw conflict(
      `Segment '${seg.id}' cannot be deleted: The segment is still bound with ${bound!.n} port(s).`,
    );
  }
  await tx.q.query("DELETE FROM segments WHERE id = $1", [seg.id]);
  tx.out.removedSegments.add(seg.id);
  segmentEvent(tx.out, "deleted", seg);
}
