// ListAllocationCandidates against a real scheduler process: sharing providers (segments'
// IPV4_ADDRESS joining compute nodes through aggregates), traits, member_of, in_tree, granular
// groups with group_policy, limit and provider summaries.
import { randomUUID } from "node:crypto";
import { GroupPolicy } from "@stratus/contracts/scheduler/v1/placement";
import { describe, expect, it } from "vitest";
import { addAggregate, big, fileScheduler, refusal, registerHost, registerSegment } from "./helpers.js";

const scheduler = fileScheduler();

const flavor = { VCPU: 1, MEMORY_MB: 512, DISK_GB: 1 };

function routedRequest(segments: string[], extra: { memberOf?: string[][]; requiredTraits?: string[] } = {}) {
  return scheduler.placement.listAllocationCandidates({
    groups: [
      {
        suffix: "",
        resources: big(flavor),
        memberOf: (extra.memberOf ?? []).map((aggregateUuids) => ({ aggregateUuids })),
        requiredTraits: extra.requiredTraits ?? [],
      },
      { suffix: "PORT0", resources: big({ IPV4_ADDRESS: 1 }), memberOf: [{ aggregateUuids: segments }] },
    ],
    groupPolicy: GroupPolicy.NONE,
  });
}

describe("sharing providers", () => {
  it("a host in segment A's aggregate gets IPV4_ADDRESS from A, never from B; an exhausted A drops its hosts", async () => {
    const segA = await registerSegment(scheduler.placement, 2);
    const segB = await registerSegment(scheduler.placement, 5);
    const hostsA = [
      await registerHost(scheduler.placement, `a1-${randomUUID()}`, { vcpu: 8, ramMb: 8192, diskGb: 100 }),
      await registerHost(scheduler.placement, `a2-${randomUUID()}`, { vcpu: 8, ramMb: 8192, diskGb: 100 }),
    ];
    const hostB = await registerHost(scheduler.placement, `b1-${randomUUID()}`, {
      vcpu: 8,
      ramMb: 8192,
      diskGb: 100,
    });
    for (const h of hostsA) await addAggregate(scheduler.placement, h, segA);
    await addAggregate(scheduler.placement, hostB, segB);

    const res = await routedRequest([segA, segB]);
    const byHost = new Map<string, string[]>();
    for (const c of res.candidates) {
      const host = c.allocations.find((a) => a.resources.VCPU !== undefined)!.providerUuid;
      const ip = c.allocations
        .filter((a) => a.resources.IPV4_ADDRESS !== undefined)
        .map((a) => a.providerUuid);
      byHost.set(host, [...(byHost.get(host) ?? []), ...ip]);
    }
    expect([...byHost.keys()].sort()).toEqual([...hostsA, hostB].sort());
    for (const h of hostsA) expect(byHost.get(h)).toEqual([segA]);
    expect(byHost.get(hostB)).toEqual([segB]);
    const summary = res.providerSummaries.find((s) => s.providerUuid === segA)!;
    expect(summary.resources.IPV4_ADDRESS).toMatchObject({ capacity: 2n, used: 0n });

    // Only asking for segment B: hosts of A are not candidates at all.
    const onlyB = await routedRequest([segB]);
    expect(onlyB.candidates.map((c) => c.allocations.map((a) => a.providerUuid).sort())).toEqual([
      [hostB, segB].sort(),
    ]);

    // Use up A's addresses: its hosts still have CPU but are no longer candidates.
    for (let i = 0; i < 2; i++) {
      await scheduler.placement.putAllocations({
        consumerUuid: randomUUID(),
        projectId: "p",
        consumerGeneration: 0n,
        allocations: [
          { providerUuid: hostsA[i]!, resources: big(flavor) },
          { providerUuid: segA, resources: big({ IPV4_ADDRESS: 1 }) },
        ],
      });
    }
    const after = await routedRequest([segA, segB]);
    const hosts = after.candidates.map((c) => c.allocations.find((a) => a.resources.VCPU)!.providerUuid);
    expect(hosts).toEqual([hostB]);
    // Claiming an address beyond A's capacity is refused by placement itself.
    const over = await refusal(
      scheduler.placement.putAllocations({
        consumerUuid: randomUUID(),
        projectId: "p",
        consumerGeneration: 0n,
        allocations: [{ providerUuid: segA, resources: big({ IPV4_ADDRESS: 1 }) }],
      }),
    );
    expect(over.kind).toBe("conflict");
  });
});

describe("sharing, whatever the order it is set up in", () => {
  const hostsOf = async (segments: string[]) =>
    (await routedRequest(segments)).candidates.map((c) => ({
      host: c.allocations.find((a) => a.resources.VCPU !== undefined)!.providerUuid,
      ips: c.allocations.filter((a) => a.resources.IPV4_ADDRESS !== undefined).map((a) => a.providerUuid),
    }));
  const setTraits = async (uuid: string, traits: string[]) => {
    const { providerGeneration } = await scheduler.placement.getTraits({ providerUuid: uuid });
    await scheduler.placement.setTraits({ providerUuid: uuid, providerGeneration, traits });
  };

  it("a provider shares from the moment it has the trait, in its aggregates joined before or after, and stops when the trait goes", async () => {
    // The aggregate first, the sharing trait after (registerSegment does it the other way).
    const seg = randomUUID();
    await scheduler.placement.ensureResourceProvider({ uuid: seg, name: `segment-${seg}` });
    await scheduler.placement.setInventories({
      providerUuid: seg,
      providerGeneration: 0n,
      inventories: [{ resourceClass: "IPV4_ADDRESS", total: 4n }],
    });
    await addAggregate(scheduler.placement, seg, seg);
    const host = await registerHost(scheduler.placement, `s1-${randomUUID()}`, {
      vcpu: 8,
      ramMb: 8192,
      diskGb: 100,
    });
    await addAggregate(scheduler.placement, host, seg);
    expect(await hostsOf([seg])).toEqual([]);

    await setTraits(seg, ["MISC_SHARES_VIA_AGGREGATE"]);
    expect(await hostsOf([seg])).toEqual([{ host, ips: [seg] }]);
    // A second aggregate joined while sharing: its hosts get the addresses too.
    const other = randomUUID();
    const host2 = await registerHost(scheduler.placement, `s2-${randomUUID()}`, {
      vcpu: 8,
      ramMb: 8192,
      diskGb: 100,
    });
    await addAggregate(scheduler.placement, host2, other);
    await addAggregate(scheduler.placement, seg, other);
    expect((await hostsOf([seg])).map((c) => c.host).sort()).toEqual([host, host2].sort());

    await setTraits(seg, []);
    expect(await hostsOf([seg])).toEqual([]);
  });
});

describe("request groups", () => {
  it("filters by required and forbidden traits and by member_of (AND of any-of)", async () => {
    const agg1 = randomUUID();
    const agg2 = randomUUID();
    const tag = `CUSTOM_T${randomUUID().replaceAll("-", "").slice(0, 8).toUpperCase()}`;
    const ssd = await registerHost(
      scheduler.placement,
      `ssd-${randomUUID()}`,
      { vcpu: 4, ramMb: 4096, diskGb: 40 },
      { traits: [tag, "STORAGE_DISK_SSD"], aggregates: [agg1, agg2] },
    );
    const hdd = await registerHost(
      scheduler.placement,
      `hdd-${randomUUID()}`,
      { vcpu: 4, ramMb: 4096, diskGb: 40 },
      { traits: [tag, "STORAGE_DISK_HDD"], aggregates: [agg1] },
    );
    const list = async (group: Record<string, unknown>) =>
      (
        await scheduler.placement.listAllocationCandidates({
          groups: [{ suffix: "", resources: big(flavor), ...group }],
        })
      ).candidates.map((c) => c.allocations[0]!.providerUuid);
    expect((await list({ requiredTraits: [tag] })).sort()).toEqual([ssd, hdd].sort());
    expect(await list({ requiredTraits: [tag], forbiddenTraits: ["STORAGE_DISK_HDD"] })).toEqual([ssd]);
    expect(await list({ requiredTraits: [tag, "STORAGE_DISK_HDD"] })).toEqual([hdd]);
    expect((await list({ memberOf: [{ aggregateUuids: [agg1] }] })).sort()).toEqual([ssd, hdd].sort());
    expect(await list({ memberOf: [{ aggregateUuids: [agg1] }, { aggregateUuids: [agg2] }] })).toEqual([ssd]);
    expect((await list({ memberOf: [{ aggregateUuids: [agg2, randomUUID()] }] })).sort()).toEqual([ssd]);
    expect(await list({ requiredTraits: [tag], resources: big({ VCPU: 5 }) })).toEqual([]);
  });

  it("spreads the unnumbered group over a tree, keeps a numbered group on one provider, honours isolate and in_tree", async () => {
    const root = (await scheduler.placement.createResourceProvider({ name: `cn-${randomUUID()}` })).provider!;
    await scheduler.placement.setInventories({
      providerUuid: root.uuid,
      providerGeneration: 0n,
      inventories: [{ resourceClass: "VCPU", total: 8n }],
    });
    const nics = [];
    for (let i = 0; i < 2; i++) {
      const nic = (
        await scheduler.placement.createResourceProvider({
          name: `nic${i}-${randomUUID()}`,
          parentProviderUuid: root.uuid,
        })
      ).provider!;
      await scheduler.placement.setInventories({
        providerUuid: nic.uuid,
        providerGeneration: 0n,
        inventories: [{ resourceClass: "SRIOV_NET_VF", total: 4n }],
      });
      nics.push(nic.uuid);
    }
    const inTree = await scheduler.placement.listAllocationCandidates({
      groups: [{ suffix: "", resources: big({ VCPU: 2, SRIOV_NET_VF: 1 }), inTree: nics[0]! }],
    });
    expect(inTree.candidates).toHaveLength(2);
    for (const c of inTree.candidates) {
      expect(c.allocations.find((a) => a.providerUuid === root.uuid)?.resources.VCPU).toBe(2n);
    }
    const twoVfs = (policy: GroupPolicy, each: number) =>
      scheduler.placement.listAllocationCandidates({
        groups: [
          { suffix: "", resources: big({ VCPU: 1 }), inTree: root.uuid },
          { suffix: "VF1", resources: big({ SRIOV_NET_VF: each }) },
          { suffix: "VF2", resources: big({ SRIOV_NET_VF: each }) },
        ],
        groupPolicy: policy,
      });
    const isolated = await twoVfs(GroupPolicy.ISOLATE, 1);
    expect(isolated.candidates.length).toBeGreaterThan(0);
    for (const c of isolated.candidates) {
      const vfProviders = c.allocations.filter((a) => a.resources.SRIOV_NET_VF).map((a) => a.providerUuid);
      expect(vfProviders.sort()).toEqual([...nics].sort());
    }
    // With policy none both groups may land on one NIC (2 + 2 = 4 fits); isolate forbids it.
    const shared = await twoVfs(GroupPolicy.NONE, 2);
    expect(shared.candidates.some((c) => c.allocations.some((a) => a.resources.SRIOV_NET_VF === 4n))).toBe(
      true,
    );
    // 3 + 3 never fits on one NIC of 4: only the isolated split remains.
    const tooBig = await twoVfs(GroupPolicy.NONE, 3);
    expect(
      tooBig.candidates.every((c) => c.allocations.every((a) => (a.resources.SRIOV_NET_VF ?? 0n) <= 3n)),
    ).toBe(true);
    expect(tooBig.candidates.length).toBe(1);
  });

  it("applies limit and refuses malformed queries like Placement", async () => {
    for (let i = 0; i < 3; i++)
      await registerHost(scheduler.placement, `lim-${randomUUID()}`, { vcpu: 2, ramMb: 1024, diskGb: 10 });
    const limited = await scheduler.placement.listAllocationCandidates({
      groups: [{ suffix: "", resources: big({ VCPU: 1 }) }],
      limit: 2,
    });
    expect(limited.candidates).toHaveLength(2);
    const bad = [
      { groups: [{ suffix: "X", resources: {}, requiredTraits: ["CUSTOM_A"] }] },
      {
        groups: [
          { suffix: "A", resources: big({ VCPU: 1 }) },
          { suffix: "B", resources: big({ VCPU: 1 }) },
        ],
      },
      { groups: [{ suffix: "", resources: big({ NOPE: 1 }) }] },
      { groups: [{ suffix: "", resources: big({ VCPU: 1 }), memberOf: [{ aggregateUuids: ["x"] }] }] },
    ];
    for (const req of bad)
      expect((await refusal(scheduler.placement.listAllocationCandidates(req))).kind).toBe("invalid_input");
  });
});
