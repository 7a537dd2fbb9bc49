// SchedulerService against a real scheduler process: select + claim + alternates, weighers,
// filters, routed-network IP groups, multi-instance rollback, NoValidHost reasons, reschedule
// claims and releases, and the AllocationChanged events on NATS.
import { randomUUID } from "node:crypto";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { fromBinary } from "@bufbuild/protobuf";
import { AllocationChangedSchema } from "@stratus/contracts/events/v1";
import { PlacementService } from "@stratus/contracts/scheduler/v1/placement";
import { type RequestSpecSchema, SchedulerService, Weigher } from "@stratus/contracts/scheduler/v1/scheduler";
import { Subjects, serviceClient } from "@stratus/runtime";
import { type Mesh, startMesh } from "@stratus/runtime/testing";
import type { NatsConnection } from "nats";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { big, type PlacementClient, refusal, registerHost, registerSegment } from "./helpers.js";

let mesh: Mesh;
let placement: PlacementClient;
let scheduler: ReturnType<typeof serviceClient<typeof SchedulerService>>;
let nc: NatsConnection;

beforeAll(async () => {
  mesh = await startMesh({ services: ["scheduler"] });
  placement = serviceClient(PlacementService, mesh.url("scheduler"));
  scheduler = serviceClient(SchedulerService, mesh.url("scheduler"));
  nc = await mesh.nats.connect("tools");
});
afterAll(async () => {
  await nc?.close();
  await mesh?.close();
});

const flavor = { VCPU: 2, MEMORY_MB: 2048, DISK_GB: 10 };

/** Hosts with a tag trait unique to one test, so tests do not see each other's hosts. */
async function cloud(sizes: { vcpu: number; ramMb: number; diskGb: number }[], aggregates: string[][] = []) {
  const tag = `CUSTOM_T${randomUUID().replaceAll("-", "").slice(0, 10).toUpperCase()}`;
  const hosts: { name: string; uuid: string }[] = [];
  for (const [i, size] of sizes.entries()) {
    const name = `h${i}-${randomUUID().slice(0, 8)}`;
    const uuid = await registerHost(placement, name, size, {
      traits: [tag],
      aggregates: aggregates[i] ?? [],
    });
    hosts.push({ name, uuid });
  }
  return { tag, hosts };
}

/** Segments A and B of `addresses` each, and one host in each: sizes[0] in A's aggregate, sizes[1] in B's. */
async function twoSegmentCloud(addresses: number, sizes: { vcpu: number; ramMb: number; diskGb: number }[]) {
  const segA = await registerSegment(placement, addresses);
  const segB = await registerSegment(placement, addresses);
  return { segA, segB, ...(await cloud(sizes, [[segA], [segB]])) };
}

/** A routed port's request group: one IPV4_ADDRESS from any of these segments. */
const addressFrom = (segments: string[]) => ({
  suffix: "PORT0",
  resources: big({ IPV4_ADDRESS: 1 }),
  memberOf: [{ aggregateUuids: segments }],
});

function spec(tag: string, extra: MessageInitShape<typeof RequestSpecSchema> = {}, instances = 1) {
  return {
    instanceUuids: Array.from({ length: instances }, () => randomUUID()),
    projectId: "proj",
    userId: "user",
    resources: big(flavor),
    requiredTraits: [tag],
    ...extra,
  };
}

const hostOf = (allocs: { providerUuid: string; resources: Record<string, bigint> }[]) =>
  allocs.find((a) => a.resources.VCPU !== undefined)!.providerUuid;

describe("SelectDestinations", () => {
  it("claims the emptiest host (spread), returns alternates on other hosts and publishes the claim", async () => {
    const { tag, hosts } = await cloud([
      { vcpu: 8, ramMb: 8192, diskGb: 100 },
      { vcpu: 16, ramMb: 32768, diskGb: 100 },
      { vcpu: 8, ramMb: 16384, diskGb: 100 },
      { vcpu: 4, ramMb: 4096, diskGb: 100 },
    ]);
    const sub = nc.subscribe(Subjects.allocationClaimed, { max: 1 });
    const req = spec(tag);
    const res = await scheduler.selectDestinations({ spec: req });
    const d = res.destinations[0]!;
    expect(d.instanceUuid).toBe(req.instanceUuids[0]);
    expect(d.selected!.host).toBe(hosts[1]!.name);
    expect(d.selected!.computeNodeUuid).toBe(hosts[1]!.uuid);
    expect(d.selected!.allocations).toEqual([
      expect.objectContaining({ providerUuid: hosts[1]!.uuid, resources: big(flavor) }),
    ]);
    expect(d.alternates).toHaveLength(2);
    const alternateHosts = d.alternates.map((a) => a.host);
    expect(new Set(alternateHosts).size).toBe(2);
    expect(alternateHosts).not.toContain(hosts[1]!.name);
    // The claim is real: placement shows it under the instance uuid.
    const held = await placement.getAllocations({ consumerUuid: req.instanceUuids[0]! });
    expect(held.consumerGeneration).toBe(1n);
    expect(held.projectId).toBe("proj");
    expect(hostOf(held.allocations)).toBe(hosts[1]!.uuid);
    for await (const m of sub) {
      const event = fromBinary(AllocationChangedSchema, m.data);
      expect(event).toMatchObject({
        consumerUuid: req.instanceUuids[0],
        claimed: true,
        host: hosts[1]!.name,
      });
    }
    // Alternates are unclaimed: nothing is used on them.
    for (const alt of d.alternates) {
      expect((await placement.getUsages({ providerUuid: alt.computeNodeUuid })).usages.VCPU).toBe(0n);
    }
  });

  it("pack prefers the fullest host; max_alternates and ignore/force hosts are honoured", async () => {
    const { tag, hosts } = await cloud([
      { vcpu: 8, ramMb: 8192, diskGb: 100 },
      { vcpu: 16, ramMb: 32768, diskGb: 100 },
      { vcpu: 8, ramMb: 4096, diskGb: 100 },
    ]);
    const packed = await scheduler.selectDestinations({
      spec: spec(tag, { weigher: Weigher.PACK, maxAlternates: 1 }),
    });
    expect(packed.destinations[0]!.selected!.host).toBe(hosts[2]!.name);
    expect(packed.destinations[0]!.alternates).toHaveLength(1);
    const ignored = await scheduler.selectDestinations({
      spec: spec(tag, { ignoreHosts: [hosts[1]!.name, hosts[2]!.name] }),
    });
    expect(ignored.destinations[0]!.selected!.host).toBe(hosts[0]!.name);
    expect(ignored.destinations[0]!.alternates).toEqual([]);
    const forced = await scheduler.selectDestinations({ spec: spec(tag, { forceHosts: [hosts[2]!.name] }) });
    expect(forced.destinations[0]!.selected!.host).toBe(hosts[2]!.name);
    // hosts[2] has 4096 MB: two 2048 MB instances used it up.
    const full = await refusal(
      scheduler.selectDestinations({ spec: spec(tag, { forceHosts: [hosts[2]!.name] }) }),
    );
    expect(full.kind).toBe("no_valid_host");
    expect(full.message).toMatch(/MEMORY_MB/);
  });

  it("takes each routed port's address from the segment the chosen host shares, and says when segments run dry", async () => {
    const { segA, segB, tag, hosts } = await twoSegmentCloud(1, [
      { vcpu: 32, ramMb: 65536, diskGb: 500 },
      { vcpu: 8, ramMb: 8192, diskGb: 100 },
    ]);
    const portGroup = addressFrom([segA, segB]);
    const first = await scheduler.selectDestinations({ spec: spec(tag, { extraGroups: [portGroup] }) });
    const sel = first.destinations[0]!.selected!;
    expect(sel.host).toBe(hosts[0]!.name);
    expect(sel.allocations.find((a) => a.providerUuid === segA)?.resources).toEqual(big({ IPV4_ADDRESS: 1 }));
    expect(first.destinations[0]!.alternates.map((a) => a.host)).toEqual([hosts[1]!.name]);
    expect(first.destinations[0]!.alternates[0]!.allocations.map((a) => a.providerUuid).sort()).toEqual(
      [hosts[1]!.uuid, segB].sort(),
    );
    // Segment A is now out of addresses: the big host still has CPU but is no longer chosen.
    const second = await scheduler.selectDestinations({ spec: spec(tag, { extraGroups: [portGroup] }) });
    expect(second.destinations[0]!.selected!.host).toBe(hosts[1]!.name);
    const none = await refusal(
      scheduler.selectDestinations({ spec: spec(tag, { extraGroups: [portGroup] }) }),
    );
    expect(none.kind).toBe("no_valid_host");
    expect(none.message).toMatch(
      /^No valid host was found\. There are not enough hosts available: IPV4_ADDRESS exhausted on segments/,
    );
    expect(none.message).toContain(segA);
  });

  it("says when a segment still has addresses but none of its hosts has room for the flavor", async () => {
    const { segA, segB, tag, hosts } = await twoSegmentCloud(10, [
      { vcpu: 2, ramMb: 4096, diskGb: 100 },
      { vcpu: 32, ramMb: 65536, diskGb: 500 },
    ]);
    const onA = addressFrom([segA]);
    const first = await scheduler.selectDestinations({ spec: spec(tag, { extraGroups: [onA] }) });
    expect(first.destinations[0]!.selected!.host).toBe(hosts[0]!.name);
    // Both refusals come after a search that found nothing (on PGlite the second may use the
    // first's: nothing since could have made room); the second reads the reason kept.
    for (let i = 0; i < 2; i++) {
      const full = await refusal(scheduler.selectDestinations({ spec: spec(tag, { extraGroups: [onA] }) }));
      expect(full.kind).toBe("no_valid_host");
      expect(full.message).toBe(
        "No valid host was found. There are not enough hosts available: no host with the flavor's " +
          `resources is in an aggregate with a provider of 1 IPV4_ADDRESS on segments/aggregates ${segA} (group PORT0).`,
      );
    }
    // Room given back (a release is a placement write): the next request is placed again.
    await scheduler.releaseClaims({ consumerUuid: first.destinations[0]!.instanceUuid });
    const again = await scheduler.selectDestinations({ spec: spec(tag, { extraGroups: [onA] }) });
    expect(again.destinations[0]!.selected!.host).toBe(hosts[0]!.name);
    // The other segment's host, with room, is still chosen for a request that may use it.
    const either = addressFrom([segA, segB]);
    const other = await scheduler.selectDestinations({ spec: spec(tag, { extraGroups: [either] }) });
    expect(other.destinations[0]!.selected!.host).toBe(hosts[1]!.name);
  });

  it("places several instances or none: a failure releases what this call claimed", async () => {
    const { tag, hosts } = await cloud([
      { vcpu: 4, ramMb: 4096, diskGb: 100 },
      { vcpu: 4, ramMb: 4096, diskGb: 100 },
    ]);
    const two = await scheduler.selectDestinations({ spec: spec(tag, {}, 4) });
    expect(two.destinations).toHaveLength(4);
    // Spread: two instances per host.
    const perHost = new Map<string, number>();
    for (const d of two.destinations) perHost.set(d.selected!.host, (perHost.get(d.selected!.host) ?? 0) + 1);
    expect([...perHost.values()]).toEqual([2, 2]);
    for (const d of two.destinations) await scheduler.releaseClaims({ consumerUuid: d.instanceUuid });

    const tooMany = spec(tag, {}, 5);
    const err = await refusal(scheduler.selectDestinations({ spec: tooMany }));
    expect(err.kind).toBe("no_valid_host");
    expect(err.message).toMatch(/4 of 5 instances/);
    for (const h of hosts) {
      expect((await placement.getUsages({ providerUuid: h.uuid })).usages).toMatchObject({
        VCPU: 0n,
        MEMORY_MB: 0n,
      });
    }
    for (const id of tooMany.instanceUuids) {
      expect((await placement.getAllocations({ consumerUuid: id })).allocations).toEqual([]);
    }
  });

  it("reschedules with ClaimSelection (idempotent) and releases with ReleaseClaims (idempotent)", async () => {
    const { tag, hosts } = await cloud([
      { vcpu: 8, ramMb: 8192, diskGb: 100 },
      { vcpu: 8, ramMb: 8192, diskGb: 100 },
    ]);
    const req = spec(tag);
    const instance = req.instanceUuids[0]!;
    const d = (await scheduler.selectDestinations({ spec: req })).destinations[0]!;
    const alternate = d.alternates[0]!;
    expect(alternate.host).not.toBe(d.selected!.host);
    // The build failed on the selected host: move the claim to the alternate.
    const moved = await scheduler.claimSelection({ consumerUuid: instance, selection: alternate });
    expect(moved.consumerGeneration).toBe(2n);
    const again = await scheduler.claimSelection({ consumerUuid: instance, selection: alternate });
    expect(again.consumerGeneration).toBe(2n);
    expect((await placement.getUsages({ providerUuid: d.selected!.computeNodeUuid })).usages.VCPU).toBe(0n);
    expect((await placement.getUsages({ providerUuid: alternate.computeNodeUuid })).usages.VCPU).toBe(2n);
    expect(hosts.map((h) => h.uuid)).toContain(alternate.computeNodeUuid);

    await scheduler.releaseClaims({ consumerUuid: instance });
    await scheduler.releaseClaims({ consumerUuid: instance });
    expect((await placement.getAllocations({ consumerUuid: instance })).consumerGeneration).toBe(0n);
    expect((await placement.getUsages({ providerUuid: alternate.computeNodeUuid })).usages.VCPU).toBe(0n);
  });

  it("requests at the same time weigh each other's claims; a placement write is seen by the next request", async () => {
    const { tag, hosts } = await cloud(
      Array.from({ length: 4 }, () => ({ vcpu: 8, ramMb: 16384, diskGb: 100 })),
    );
    // Four equal hosts, four requests at once: each request takes its host from the view the
    // others already took theirs from, so they spread instead of racing for one host.
    const four = await Promise.all(
      Array.from({ length: 4 }, () => scheduler.selectDestinations({ spec: spec(tag) })),
    );
    const chosen = four.map((r) => r.destinations[0]!.selected!.host);
    expect(new Set(chosen).size).toBe(4);
    // Every host now has 14 GiB free. Someone else (not the scheduler's claims) takes 12 GiB of
    // host 0 through PlacementService: the next request must see it and not weigh host 0 as
    // the emptiest.
    await placement.putAllocations({
      consumerUuid: randomUUID(),
      projectId: "other",
      userId: "other",
      consumerGeneration: 0n,
      allocations: [{ providerUuid: hosts[0]!.uuid, resources: big({ MEMORY_MB: 12288 }) }],
    });
    const next = await scheduler.selectDestinations({ spec: spec(tag, { maxAlternates: 3 }) });
    const d = next.destinations[0]!;
    expect(d.selected!.host).not.toBe(hosts[0]!.name);
    // Host 0 (2 GiB free) is still a valid alternate, and the last one.
    expect(d.alternates.map((a) => a.host).at(-1)).toBe(hosts[0]!.name);
  });

  it("refuses a claim that no longer fits and bad requests", async () => {
    const { tag, hosts } = await cloud([{ vcpu: 2, ramMb: 2048, diskGb: 10 }]);
    const selection = {
      host: hosts[0]!.name,
      computeNodeUuid: hosts[0]!.uuid,
      allocations: [{ providerUuid: hosts[0]!.uuid, resources: big(flavor) }],
    };
    await scheduler.claimSelection({ consumerUuid: randomUUID(), projectId: "p", selection });
    const late = await refusal(
      scheduler.claimSelection({ consumerUuid: randomUUID(), projectId: "p", selection }),
    );
    expect(late.kind).toBe("conflict");
    expect(
      (await refusal(scheduler.selectDestinations({ spec: { ...spec(tag), instanceUuids: [] } }))).kind,
    ).toBe("invalid_input");
    expect((await refusal(scheduler.selectDestinations({}))).kind).toBe("invalid_input");
    const nothing = await refusal(
      scheduler.selectDestinations({ spec: spec(tag, { requiredTraits: [tag, "CUSTOM_NOBODY_HAS_THIS"] }) }),
    );
    expect(nothing.kind).toBe("no_valid_host");
    expect(nothing.message).toMatch(/traits/);
  });
});
