// The two forms of the ordered roots search give the same roots in the same order: driven by the
// member_of's members (narrow member_of) or walking every root by free amount (broad member_of,
// and no member_of). On PGlite, in-process, over a small cloud written straight into the schema.
import { randomUUID } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createLogger, type Database, migrationsFrom, openDatabase } from "@stratus/runtime";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { CandidateQuery, RequestGroupSpec } from "./request.js";
import { rootsQuery } from "./search-sql.js";

const HOSTS = 30;
const SEGMENTS = 3;
let db: Database;
const dataDir = mkdtempSync(join(tmpdir(), "stratus-walk-"));
const segments = Array.from({ length: SEGMENTS }, () => randomUUID());
const hosts = Array.from({ length: HOSTS }, () => randomUUID());

beforeAll(async () => {
  db = await openDatabase({
    service: "scheduler",
    dataDir,
    migrations: migrationsFrom(new URL("../../../migrations", import.meta.url).pathname),
    logger: createLogger("test", "warn"),
  });
  const ins = `INSERT INTO resource_providers (id, uuid, name, generation, root_id, shares)
    SELECT n, u, nm, 1, n, s FROM (SELECT nextval(pg_get_serial_sequence('resource_providers', 'id'))::int AS n, u, nm, s
    FROM unnest($1::uuid[], $2::text[], $3::bool[]) AS x(u, nm, s)) q`;
  await db.query(ins, [segments, segments.map((s) => `segment-${s}`), segments.map(() => true)]);
  await db.query(ins, [hosts, hosts.map((_, i) => `host-${i}`), hosts.map(() => false)]);
  await db.query(
    `INSERT INTO inventories (provider_id, resource_class, total, max_unit)
     SELECT id, 'IPV4_ADDRESS', 100, 100 FROM resource_providers WHERE shares`,
  );
  // Every host a different free amount of memory (host i has i * 100 MB used); host 7 has no
  // disk left, host 12 no VCPU inventory at all.
  await db.query(
    `INSERT INTO inventories (provider_id, resource_class, total, max_unit, used)
     SELECT p.id, 'MEMORY_MB', 16384, 16384, (x.i - 1) * 100
     FROM unnest($1::uuid[]) WITH ORDINALITY x(u, i) JOIN resource_providers p ON p.uuid = x.u`,
    [hosts],
  );
  await db.query(
    `INSERT INTO inventories (provider_id, resource_class, total, max_unit, used)
     SELECT id, 'DISK_GB', 100, 100, CASE WHEN name = 'host-7' THEN 100 ELSE 0 END FROM resource_providers WHERE NOT shares`,
  );
  await db.query(
    `INSERT INTO inventories (provider_id, resource_class, total, max_unit)
     SELECT id, 'VCPU', 8, 8 FROM resource_providers WHERE NOT shares AND name <> 'host-12'`,
  );
  await db.query(
    `INSERT INTO provider_traits SELECT id, 'MISC_SHARES_VIA_AGGREGATE' FROM resource_providers WHERE shares`,
  );
  await db.query(
    `INSERT INTO provider_aggregates SELECT p.id, x.a FROM unnest($1::uuid[], $2::uuid[]) x(u, a) JOIN resource_providers p ON p.uuid = x.u`,
    [
      [...segments, ...hosts],
      [...segments, ...hosts.map((_, i) => segments[i % SEGMENTS]!)],
    ],
  );
});
afterAll(async () => {
  await db?.close();
  rmSync(dataDir, { recursive: true, force: true });
});

const group = (memberOf: string[][]): RequestGroupSpec[] => [
  {
    suffix: "",
    resources: { VCPU: 1, MEMORY_MB: 1024, DISK_GB: 10 },
    requiredTraits: [],
    forbiddenTraits: [],
    memberOf: [],
  },
  { suffix: "PORT1", resources: { IPV4_ADDRESS: 1 }, requiredTraits: [], forbiddenTraits: [], memberOf },
];

async function roots(query: CandidateQuery, limit: number, walk: boolean): Promise<string[]> {
  const { sql, params } = rootsQuery(query, limit, { sharingClasses: new Set(["IPV4_ADDRESS"]), walk });
  const rows = await db.query<{ id: number }>(sql, params);
  const names = await db.query<{ id: number; name: string }>(
    "SELECT id, name FROM resource_providers WHERE id = ANY($1::int[])",
    [rows.map((r) => r.id)],
  );
  const byId = new Map(names.map((n) => [n.id, n.name]));
  return rows.map((r) => byId.get(r.id)!);
}

describe("the ordered roots search", () => {
  it.each([
    ["one segment, most free", [[segments[0]!]], "most_free", 4],
    ["two segments, most free", [[segments[0]!, segments[1]!]], "most_free", 6],
    ["every segment, least free", [segments], "least_free", 5],
    ["one segment, more than it has", [[segments[1]!]], "most_free", 50],
  ] as const)(
    "%s: driven by the members or walking every root, the same roots",
    async (_label, memberOf, direction, limit) => {
      const query: CandidateQuery = {
        groups: group(memberOf.map((m) => [...m])),
        order: { resourceClass: "MEMORY_MB", direction },
      };
      const driven = await roots(query, limit, false);
      const walked = await roots(query, limit, true);
      expect(walked).toEqual(driven);
      expect(driven.length).toBeGreaterThan(0);
      // Never a host without disk or VCPU, never a host of another segment.
      expect(driven).not.toContain("host-7");
      expect(driven).not.toContain("host-12");
      const allowed = new Set(memberOf.flat());
      for (const name of driven)
        expect(allowed.has(segments[Number(name.split("-")[1]) % SEGMENTS]!)).toBe(true);
      // In order of free memory: host i has less free than host i - 1.
      const idx = driven.map((n) => Number(n.split("-")[1]));
      const sorted = [...idx].sort((a, b) => (direction === "most_free" ? a - b : b - a));
      expect(idx).toEqual(sorted);
    },
  );
});
