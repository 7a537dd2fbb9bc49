// A host may hold IPV4_ADDRESS itself instead of taking it from a segment it shares an aggregate
// with. The candidate search leaves out the probe for a class that only sharing providers hold;
// it must put it back as soon as a host holds that class too (a write through this scheduler).
// Its own scheduler process: the classes the cloud's providers hold are what this test is about.
import { randomUUID } from "node:crypto";
import { GroupPolicy } from "@stratus/contracts/scheduler/v1/placement";
import { describe, expect, it } from "vitest";
import { big, fileScheduler, registerHost, registerSegment } from "./helpers.js";

const scheduler = fileScheduler();

const flavor = { VCPU: 1, MEMORY_MB: 512, DISK_GB: 1 };

async function candidates(segment: string) {
  const res = await scheduler.placement.listAllocationCandidates({
    groups: [
      { suffix: "", resources: big(flavor) },
      { suffix: "PORT0", resources: big({ IPV4_ADDRESS: 1 }), memberOf: [{ aggregateUuids: [segment] }] },
    ],
    groupPolicy: GroupPolicy.NONE,
  });
  return res.candidates.map((c) => ({
    host: c.allocations.find((a) => a.resources.VCPU !== undefined)!.providerUuid,
    ips: c.allocations.filter((a) => a.resources.IPV4_ADDRESS !== undefined).map((a) => a.providerUuid),
  }));
}

describe("addresses a host holds itself", () => {
  it("are found once a host holds the class, though before only segments did", async () => {
    const seg = await registerSegment(scheduler.placement, 1);
    const shared = await registerHost(
      scheduler.placement,
      `shared-${randomUUID()}`,
      { vcpu: 8, ramMb: 8192, diskGb: 100 },
      {
        aggregates: [seg],
      },
    );
    const own = await registerHost(
      scheduler.placement,
      `own-${randomUUID()}`,
      { vcpu: 8, ramMb: 8192, diskGb: 100 },
      {
        aggregates: [seg],
      },
    );
    // Only the segment holds addresses: both hosts take them from it.
    expect((await candidates(seg)).sort((a, b) => a.host.localeCompare(b.host))).toEqual(
      [
        { host: shared, ips: [seg] },
        { host: own, ips: [seg] },
      ].sort((a, b) => a.host.localeCompare(b.host)),
    );

    // The second host gets addresses of its own; the segment's one address is used up.
    const { providerGeneration } = await scheduler.placement.getInventories({ providerUuid: own });
    await scheduler.placement.setInventories({
      providerUuid: own,
      providerGeneration,
      inventories: [
        { resourceClass: "VCPU", total: 8n, allocationRatio: 1 },
        { resourceClass: "MEMORY_MB", total: 8192n },
        { resourceClass: "DISK_GB", total: 100n },
        { resourceClass: "IPV4_ADDRESS", total: 2n },
      ],
    });
    await scheduler.placement.putAllocations({
      consumerUuid: randomUUID(),
      projectId: "p",
      consumerGeneration: 0n,
      allocations: [{ providerUuid: seg, resources: big({ IPV4_ADDRESS: 1 }) }],
    });
    expect(await candidates(seg)).toEqual([{ host: own, ips: [own] }]);
  });
});
