// HostPools over a finder that answers from a list: what a pool counts as used while claims are
// written, when a search that found nothing may stand, and one search per shape at a time.
import { describe, expect, it } from "vitest";
import type { CandidateResult } from "../placement/candidates/allocation-candidates.js";
import type { CandidateQuery } from "../placement/candidates/request.js";
import { HostPools } from "./host-pool.js";

const ROOT = "00000000-0000-4000-8000-000000000001";
const query: CandidateQuery = {
  groups: [
    { suffix: "", resources: { MEMORY_MB: 100 }, requiredTraits: [], forbiddenTraits: [], memberOf: [] },
  ],
  limit: 10,
  order: { resourceClass: "MEMORY_MB", direction: "most_free" },
};

/** One host with 1,000 MB, 100 MB a candidate; `hosts: 0` answers as a full cloud would. */
function finder(hosts: 0 | 1 = 1) {
  const calls: CandidateQuery[] = [];
  const result: CandidateResult =
    hosts === 0
      ? { candidates: [], summaries: [] }
      : {
          candidates: [
            {
              rootUuid: ROOT,
              allocations: [{ providerUuid: ROOT, resources: { MEMORY_MB: 100 } }],
              mappings: {},
            },
          ],
          summaries: [
            {
              uuid: ROOT,
              name: "host-1",
              rootUuid: ROOT,
              parentUuid: "",
              shares: false,
              traits: [],
              aggregates: [],
              resources: { MEMORY_MB: { capacity: 1000, used: 0 } },
            },
          ],
        };
  return {
    calls,
    async list(q: CandidateQuery) {
      calls.push(q);
      await new Promise((r) => setImmediate(r));
      return result;
    },
  };
}

const options = (soleWriterOfPlacement: boolean) => ({
  candidateLimit: 10,
  poolTtlMs: 60_000,
  soleWriterOfPlacement,
});

describe("HostPools", () => {
  it("counts a claim being written as used in a search made meanwhile, and not after it", async () => {
    const pools = new HostPools(finder(), () => 0, options(false));
    const first = await pools.fetch(query, "shape");
    const way = first.hosts[0]!.ways[0]!;
    pools.take(way);
    expect(first.hosts[0]!.ram!.used).toBe(100);
    // The database does not show the claim yet: the new search's view counts it all the same.
    expect((await pools.fetch(query, undefined)).hosts[0]!.ram!.used).toBe(100);
    pools.claimed(way);
    expect((await pools.fetch(query, undefined)).hosts[0]!.ram!.used).toBe(0);
  });

  it("gives a failed claim's amounts back to its pool", async () => {
    const pools = new HostPools(finder(), () => 0, options(false));
    const pool = await pools.fetch(query, "shape");
    const way = pool.hosts[0]!.ways[0]!;
    pools.take(way);
    pools.givenBack(way);
    expect(pool.hosts[0]!.ram!.used).toBe(0);
    expect((await pools.fetch(query, undefined)).hosts[0]!.ram!.used).toBe(0);
  });

  it("lets a search that found nothing stand only for the sole writer of placement, until a write or a failed claim", async () => {
    let version = 0;
    const sole = new HostPools(finder(0), () => version, options(true));
    const shared = new HostPools(finder(0), () => version, options(false));
    const none = await sole.fetch(query, "shape");
    expect(sole.stillNone(none)).toBe(true);
    expect(shared.stillNone(await shared.fetch(query, "shape"))).toBe(false);
    version++;
    expect(sole.stillNone(none)).toBe(false);

    const full = new HostPools(finder(1), () => version, options(true));
    const pool = await full.fetch(query, "shape");
    const empty = { ...pool, hosts: [] };
    expect(full.stillNone(empty)).toBe(true);
    const way = pool.hosts[0]!.ways[0]!;
    full.take(way);
    full.givenBack(way);
    expect(full.stillNone(empty)).toBe(false);
  });

  it("runs one search at a time per shape; a request of its own runs its own", async () => {
    const f = finder();
    const pools = new HostPools(f, () => 0, options(false));
    const [a, b] = await Promise.all([pools.fetch(query, "shape"), pools.fetch(query, "shape")]);
    expect(a).toBe(b);
    expect(f.calls).toHaveLength(1);
    await Promise.all([pools.fetch(query, undefined), pools.fetch(query, undefined)]);
    expect(f.calls).toHaveLength(3);
    expect(pools.cached("shape")).toBe(a);
  });
});
