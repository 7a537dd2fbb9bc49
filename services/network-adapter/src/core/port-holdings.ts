// The audit's read of the network (ListPortHoldings, docs/audit.md): every port with its device,
// binding and the addresses it holds, in one statement (one snapshot). An address carries its
// subnet's segment only when that segment is a placement provider (it has a physical network:
// placement-sync.ts), and says whether placement's usage counts it: the network's own ports'
// addresses are reserved in the segment's inventory instead (rules.ts, reservesAddressesSql).
import type { MessageInitShape } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { PortHoldingSchema } from "@stratus/contracts/network/v1";
import type { Database } from "@stratus/runtime";
import { formatIp } from "../ipam/ipv4.js";
import { reservesAddressesSql } from "./rules.js";

type Row = {
  id: string;
  network_id: string;
  device_id: string;
  device_owner: string;
  binding_host_id: string;
  created_at: Date | string;
  reserved: boolean;
  addresses: { subnet: string; segment: string | null; ip: string | number }[];
};

/** Every segment that is a placement provider (placement-sync.ts: a physical network and a subnet). */
export async function providerSegmentIds(db: Database): Promise<string[]> {
  const rows = await db.query<{ id: string }>(
    `SELECT s.id::text AS id FROM segments s
     WHERE s.physical_network <> '' AND EXISTS (SELECT 1 FROM subnets sn WHERE sn.segment_id = s.id) ORDER BY s.id`,
  );
  return rows.map((r) => r.id);
}

export async function portHoldings(db: Database): Promise<MessageInitShape<typeof PortHoldingSchema>[]> {
  const rows = await db.query<Row>(
    `SELECT p.id::text AS id, p.network_id::text AS network_id, p.device_id, p.device_owner, p.binding_host_id,
       p.created_at, ${reservesAddressesSql("p")} AS reserved,
       coalesce((SELECT json_agg(json_build_object('subnet', a.subnet_id::text,
           'segment', CASE WHEN sg.physical_network <> '' THEN sg.id::text END, 'ip', a.ip) ORDER BY a.subnet_id, a.ip)
         FROM ip_allocations a JOIN subnets sn ON sn.id = a.subnet_id LEFT JOIN segments sg ON sg.id = sn.segment_id
         WHERE a.port_id = p.id), '[]'::json) AS addresses
     FROM ports p ORDER BY p.id`,
  );
  return rows.map((r) => ({
    portId: r.id,
    networkId: r.network_id,
    deviceId: r.device_id,
    deviceOwner: r.device_owner,
    bindingHostId: r.binding_host_id,
    createdAt: timestampFromDate(new Date(r.created_at)),
    addresses: (typeof r.addresses === "string" ? JSON.parse(r.addresses) : r.addresses).map(
      (a: Row["addresses"][number]) => ({
        subnetId: a.subnet,
        segmentId: a.segment ?? "",
        ipAddress: formatIp(Number(a.ip)),
        claimed: !r.reserved,
      }),
    ),
  }));
}
