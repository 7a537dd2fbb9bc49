// The benchmark cloud written straight into the scheduler's schema (no RPC): `segmentCount`
// segment providers (IPV4_ADDRESS, MISC_SHARES_VIA_AGGREGATE, aggregate = own uuid) and `hosts`
// compute nodes (8 VCPU, 16384 MEMORY_MB, 160 DISK_GB), host i in segment i mod segmentCount's
// aggregate. Shared by claims-inproc.ts and explain.ts; main.ts's `--load sql` also sets
// generations the RPC path would have.
import { randomUUID } from "node:crypto";
import type { Queryable } from "@stratus/runtime";
import type { RequestGroupSpec } from "../../services/scheduler/src/placement/candidates/request.js";

export async function seedCloud(
  db: Queryable,
  hosts: number,
  segmentCount: number,
  ipsPerSegment: number,
): Promise<{ segments: string[]; hostUuids: string[] }> {
  const segments = Array.from({ length: segmentCount }, () => randomUUID());
  const hostUuids = Array.from({ length: hosts }, () => randomUUID());
  const ins = `INSERT INTO resource_providers (id, uuid, name, generation, root_id, shares)
    SELECT n, u, nm, 2, n, s FROM (SELECT nextval(pg_get_serial_sequence('resource_providers', 'id'))::int AS n, u, nm, s
    FROM unnest($1::uuid[], $2::text[], $3::bool[]) AS x(u, nm, s)) q`;
  await db.query(ins, [segments, segments.map((s) => `segment-${s}`), segments.map(() => true)]);
  await db.query(ins, [hostUuids, hostUuids.map((_, i) => `compute-${i}`), hostUuids.map(() => false)]);
  await db.query(
    `INSERT INTO inventories (provider_id, resource_class, total, max_unit)
     SELECT id, 'IPV4_ADDRESS', $1, $1 FROM resource_providers WHERE shares`,
    [ipsPerSegment],
  );
  for (const [rc, t] of [
    ["VCPU", 8],
    ["MEMORY_MB", 16384],
    ["DISK_GB", 160],
  ] as const)
    await db.query(
      `INSERT INTO inventories (provider_id, resource_class, total, max_unit)
      SELECT id, $1, $2, $2 FROM resource_providers WHERE NOT shares`,
      [rc, t],
    );
  await db.query(
    `INSERT INTO provider_traits SELECT id, 'MISC_SHARES_VIA_AGGREGATE' FROM resource_providers WHERE shares`,
  );
  await db.query(
    `INSERT INTO provider_aggregates SELECT p.id, x.a FROM unnest($1::uuid[], $2::uuid[]) x(u, a) JOIN resource_providers p ON p.uuid = x.u`,
    [
      [...segments, ...hostUuids],
      [...segments, ...hostUuids.map((_, i) => segments[i % segmentCount]!)],
    ],
  );
  return { segments, hostUuids };
}

/** The benchmark's candidate search: VCPU 1, MEMORY_MB 1024, DISK_GB 10 + one address from `segment`. */
export function searchGroups(segment: string): RequestGroupSpec[] {
  return [
    {
      suffix: "",
      resources: { VCPU: 1, MEMORY_MB: 1024, DISK_GB: 10 },
      requiredTraits: [],
      forbiddenTraits: [],
      memberOf: [],
    },
    {
      suffix: "PORT1",
      resources: { IPV4_ADDRESS: 1 },
      requiredTraits: [],
      forbiddenTraits: [],
      memberOf: [[segment]],
    },
  ];
}
