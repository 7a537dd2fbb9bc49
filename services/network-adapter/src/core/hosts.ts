// Host ↔ segment mapping, from the physical networks each compute agent reports (Neutron's bridge
// mappings). The map is derived by physical network at read time, so a new segment is mapped to
// every host that has its physical network at once, and a report that drops a physnet unmaps it.
import { invalidInput } from "@stratus/runtime";
import type { Tx } from "./context.js";

export async function reportHostPhysicalNetworks(
  tx: Tx,
  req: { host: string; physicalNetworks: string[]; computeNodeUuid: string },
): Promise<string[]> {
  if (!req.host) throw invalidInput("host is required");
  const physnets = [...new Set(req.physicalNetworks.filter(Boolean))].sort();
  await tx.q.query(
    `INSERT INTO hosts (host, physical_networks, compute_node_uuid) VALUES ($1, $2, $3)
     ON CONFLICT (host) DO UPDATE SET physical_networks = EXCLUDED.physical_networks,
       compute_node_uuid = CASE WHEN EXCLUDED.compute_node_uuid = '' THEN hosts.compute_node_uuid ELSE EXCLUDED.compute_node_uuid END,
       updated_at = now()`,
    [req.host, physnets, req.computeNodeUuid],
  );
  tx.out.hosts.add(req.host);
  const rows = await tx.q.query<{ id: string }>(
    "SELECT id FROM segments WHERE physical_network <> '' AND physical_network = ANY($1::text[]) ORDER BY id",
    [physnets],
  );
  return rows.map((r) => r.id);
}

export async function listHostSegments(
  tx: Tx,
  req: { host: string; segmentId: string },
): Promise<{ host: string; segmentId: string }[]> {
  const params: unknown[] = [];
  const where = ["s.physical_network <> ''"];
  if (req.host) {
    params.push(req.host);
    where.push(`h.host = $${params.length}`);
  }
  if (req.segmentId) {
    params.push(req.segmentId.toLowerCase());
    where.push(`s.id::text = $${params.length}`);
  }
  const rows = await tx.q.query<{ host: string; segment_id: string }>(
    `SELECT h.host, s.id AS segment_id FROM hosts h JOIN segments s ON s.physical_network = ANY(h.physical_networks)
     WHERE ${where.join(" AND ")} ORDER BY h.host, s.id`,
    params,
  );
  return rows.map((r) => ({ host: r.host, segmentId: r.segment_id }));
}
