// PlacementService against a real scheduler process (PGlite): providers, inventories with
// Placement's capacity rules, traits, aggregates, allocations and the generations guarding them.
import { randomUUID } from "node:crypto";
import { PlacementService } from "@stratus/contracts/scheduler/v1/placement";
import { StratusError, serviceClient } from "@stratus/runtime";
import { type Mesh, startMesh } from "@stratus/runtime/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

let mesh: Mesh;
let placement: ReturnType<typeof serviceClient<typeof PlacementService>>;

beforeAll(async () => {
  mesh = await startMesh({ services: ["scheduler"] });
  placement = serviceClient(PlacementService, mesh.url("scheduler"));
});
afterAll(async () => {
  await mesh?.close();
});

async function refusal(p: Promise<unknown>): Promise<StratusError> {
  try {
    await p;
  } catch (err) {
    if (err instanceof StratusError) return err;
    throw err;
  }
  throw new Error("expected the call to be refused");
}

async function provider(name: string, inventories: Record<string, Record<string, number>>) {
  const uuid = randomUUID();
  await placement.ensureResourceProvider({ uuid, name });
  await placement.setInventories({
    providerUuid: uuid,
    providerGeneration: 0n,
    inventories: Object.entries(inventories).map(([resourceClass, f]) => ({
      resourceClass,
      total: BigInt(f.total ?? 0),
      reserved: BigInt(f.reserved ?? 0),
      minUnit: BigInt(f.minUnit ?? 0),
      maxUnit: BigInt(f.maxUnit ?? 0),
      stepSize: BigInt(f.stepSize ?? 0),
      allocationRatio: f.allocationRatio ?? 0,
    })),
  });
  return uuid;
}

function claim(providerUuid: string, resources: Record<string, number>, consumerUuid = randomUUID()) {
  return placement.putAllocations({
    consumerUuid,
    projectId: "p1",
    userId: "u1",
    consumerGeneration: 0n,
    allocations: [
      {
        providerUuid,
        resources: Object.fromEntries(Object.entries(resources).map(([k, v]) => [k, BigInt(v)])),
      },
    ],
  });
}

describe("resource providers", () => {
  it("EnsureResourceProvider is idempotent, also for concurrent creators of one uuid", async () => {
    const uuid = randomUUID();
    const results = await Promise.all(
      Array.from({ length: 12 }, () => placement.ensureResourceProvider({ uuid, name: `host-${uuid}` })),
    );
    expect(results.filter((r) => r.created)).toHaveLength(1);
    for (const r of results) {
      expect(r.provider?.uuid).toBe(uuid);
      expect(r.provider?.rootProviderUuid).toBe(uuid);
      expect(r.provider?.generation).toBe(0n);
    }
  });

  it("refuses a duplicate name and an unknown provider", async () => {
    const name = `dup-${randomUUID()}`;
    await placement.createResourceProvider({ name });
    expect((await refusal(placement.createResourceProvider({ name }))).kind).toBe("conflict");
    expect((await refusal(placement.getResourceProvider({ uuid: randomUUID() }))).kind).toBe("not_found");
    expect((await refusal(placement.getResourceProvider({ uuid: "nope" }))).kind).toBe("invalid_input");
  });

  it("builds trees, lists by name/tree and deletes only leaves without allocations", async () => {
    const root = (await placement.createResourceProvider({ name: `root-${randomUUID()}` })).provider!;
    const child = (
      await placement.createResourceProvider({ name: `child-${randomUUID()}`, parentProviderUuid: root.uuid })
    ).provider!;
    expect(child.rootProviderUuid).toBe(root.uuid);
    expect(child.parentProviderUuid).toBe(root.uuid);
    const tree = await placement.listResourceProviders({ inTree: child.uuid });
    expect(tree.providers.map((p) => p.uuid).sort()).toEqual([root.uuid, child.uuid].sort());
    expect((await placement.listResourceProviders({ name: root.name })).providers).toHaveLength(1);
    expect((await refusal(placement.deleteResourceProvider({ uuid: root.uuid }))).kind).toBe("conflict");

    const host = await provider(`busy-${randomUUID()}`, { VCPU: { total: 4 } });
    const consumer = randomUUID();
    await claim(host, { VCPU: 1 }, consumer);
    const busy = await refusal(placement.deleteResourceProvider({ uuid: host }));
    expect(busy.kind).toBe("conflict");
    await placement.deleteAllocations({ consumerUuid: consumer });
    await placement.deleteResourceProvider({ uuid: host });
    await placement.deleteResourceProvider({ uuid: child.uuid });
    await placement.deleteResourceProvider({ uuid: root.uuid });
    expect((await refusal(placement.getResourceProvider({ uuid: root.uuid }))).kind).toBe("not_found");
  });
});

describe("inventories and capacity", () => {
  it("fills Placement's defaults for unset fields", async () => {
    const uuid = await provider(`defaults-${randomUUID()}`, { MEMORY_MB: { total: 2048 } });
    const inv = await placement.getInventories({ providerUuid: uuid });
    expect(inv.providerGeneration).toBe(1n);
    expect(inv.inventories[0]).toMatchObject({
      resourceClass: "MEMORY_MB",
      total: 2048n,
      reserved: 0n,
      minUnit: 1n,
      maxUnit: 2048n,
      stepSize: 1n,
      allocationRatio: 1,
    });
  });

  it("capacity = (total - reserved) * allocation_ratio: fills it exactly, refuses one more", async () => {
    const uuid = await provider(`cap-${randomUUID()}`, {
      VCPU: { total: 10, reserved: 2, allocationRatio: 4, maxUnit: 100 },
    });
    await claim(uuid, { VCPU: 30 });
    await claim(uuid, { VCPU: 2 });
    const over = await refusal(claim(uuid, { VCPU: 1 }));
    expect(over.kind).toBe("conflict");
    expect(over.message).toMatch(/exceed the capacity/);
    expect((await placement.getUsages({ providerUuid: uuid })).usages).toEqual({ VCPU: 32n });
  });

  it("reserved is never allocatable", async () => {
    const uuid = await provider(`reserved-${randomUUID()}`, { DISK_GB: { total: 100, reserved: 100 } });
    expect((await refusal(claim(uuid, { DISK_GB: 1 }))).kind).toBe("conflict");
  });

  it("enforces min_unit, max_unit and step_size", async () => {
    const uuid = await provider(`units-${randomUUID()}`, {
      MEMORY_MB: { total: 8192, minUnit: 512, maxUnit: 4096, stepSize: 256 },
    });
    await claim(uuid, { MEMORY_MB: 768 });
    for (const bad of [256, 4352, 1000]) {
      const err = await refusal(claim(uuid, { MEMORY_MB: bad }));
      expect(err.kind).toBe("conflict");
      expect(err.message).toMatch(/inventory constraints/);
    }
  });

  it("refuses bad inventories and classes", async () => {
    const uuid = (await placement.createResourceProvider({ name: `bad-${randomUUID()}` })).provider!.uuid;
    const set = (resourceClass: string, total: bigint, reserved = 0n) =>
      placement.setInventories({
        providerUuid: uuid,
        providerGeneration: 0n,
        inventories: [{ resourceClass, total, reserved }],
      });
    expect((await refusal(set("VCPU", 4n, 5n))).kind).toBe("invalid_input");
    expect((await refusal(set("NOT_A_CLASS", 4n))).kind).toBe("invalid_input");
    expect((await refusal(set("CUSTOM_lower", 4n))).kind).toBe("invalid_input");
    await set("CUSTOM_GPU_SLICE", 4n);
  });

  it("inventory cannot drop below what is allocated, nor lose an allocated class", async () => {
    const uuid = await provider(`inuse-${randomUUID()}`, { VCPU: { total: 8 }, DISK_GB: { total: 50 } });
    await claim(uuid, { VCPU: 6 });
    const { providerGeneration } = await placement.getInventories({ providerUuid: uuid });
    const shrink = await refusal(
      placement.setInventories({
        providerUuid: uuid,
        providerGeneration,
        inventories: [{ resourceClass: "VCPU", total: 5n }],
      }),
    );
    expect(shrink.kind).toBe("conflict");
    const drop = await refusal(
      placement.setInventories({
        providerUuid: uuid,
        providerGeneration,
        inventories: [{ resourceClass: "DISK_GB", total: 50n }],
      }),
    );
    expect(drop.kind).toBe("conflict");
    // Shrinking to exactly what is used and dropping an unused class is fine.
    const ok = await placement.setInventories({
      providerUuid: uuid,
      providerGeneration,
      inventories: [{ resourceClass: "VCPU", total: 6n }],
    });
    expect(ok.inventories.map((i) => i.resourceClass)).toEqual(["VCPU"]);
  });
});

describe("generations", () => {
  it("a stale provider generation is a conflict; a retry with the fresh one succeeds", async () => {
    const uuid = await provider(`gen-${randomUUID()}`, { VCPU: { total: 4 } });
    const stale = 0n;
    for (const write of [
      () => placement.setInventories({ providerUuid: uuid, providerGeneration: stale, inventories: [] }),
      () => placement.setTraits({ providerUuid: uuid, providerGeneration: stale, traits: ["CUSTOM_X"] }),
      () => placement.setAggregates({ providerUuid: uuid, providerGeneration: stale, aggregateUuids: [] }),
    ]) {
      const err = await refusal(write());
      expect(err.kind).toBe("conflict");
      expect(err.message).toMatch(/generation conflict/);
    }
    const fresh = (await placement.getTraits({ providerUuid: uuid })).providerGeneration;
    const traits = await placement.setTraits({
      providerUuid: uuid,
      providerGeneration: fresh,
      traits: ["CUSTOM_X", "HW_CPU_X86_AVX2"],
    });
    expect(traits.providerGeneration).toBe(fresh + 1n);
    expect((await placement.getTraits({ providerUuid: uuid })).traits).toEqual([
      "CUSTOM_X",
      "HW_CPU_X86_AVX2",
    ]);
    expect(
      (
        await refusal(
          placement.setTraits({ providerUuid: uuid, providerGeneration: fresh + 1n, traits: ["bogus"] }),
        )
      ).kind,
    ).toBe("invalid_input");

    const agg = randomUUID();
    const aggs = await placement.setAggregates({
      providerUuid: uuid,
      providerGeneration: traits.providerGeneration,
      aggregateUuids: [agg, agg],
    });
    expect(aggs.aggregateUuids).toEqual([agg]);
    expect((await placement.getAggregates({ providerUuid: uuid })).aggregateUuids).toEqual([agg]);
    // An allocation against the provider moves its generation too.
    await claim(uuid, { VCPU: 1 });
    expect((await placement.getResourceProvider({ uuid })).provider!.generation).toBe(
      aggs.providerGeneration + 1n,
    );
  });

  it("a stale consumer generation is a conflict; a retry with the fresh one succeeds", async () => {
    const uuid = await provider(`cgen-${randomUUID()}`, { VCPU: { total: 8 }, MEMORY_MB: { total: 4096 } });
    const consumer = randomUUID();
    const first = await claim(uuid, { VCPU: 2 }, consumer);
    expect(first.consumerGeneration).toBe(1n);
    // A second creator (generation 0 = "no allocations yet") loses.
    expect((await refusal(claim(uuid, { VCPU: 1 }, consumer))).kind).toBe("conflict");
    const held = await placement.getAllocations({ consumerUuid: consumer });
    expect(held.consumerGeneration).toBe(1n);
    expect(held.projectId).toBe("p1");
    const moved = await placement.putAllocations({
      consumerUuid: consumer,
      projectId: "p1",
      userId: "u1",
      consumerGeneration: held.consumerGeneration,
      allocations: [{ providerUuid: uuid, resources: { VCPU: 4n, MEMORY_MB: 1024n } }],
    });
    expect(moved.consumerGeneration).toBe(2n);
    expect((await placement.getUsages({ providerUuid: uuid })).usages).toEqual({
      VCPU: 4n,
      MEMORY_MB: 1024n,
    });
    expect((await placement.getUsages({ projectId: "p1", userId: "u1" })).usages.VCPU).toBeGreaterThanOrEqual(
      4n,
    );
    // Empty allocations with the right generation delete them; the consumer starts again at 0.
    await placement.putAllocations({ consumerUuid: consumer, consumerGeneration: 2n, allocations: [] });
    expect((await placement.getAllocations({ consumerUuid: consumer })).consumerGeneration).toBe(0n);
    expect((await placement.getUsages({ providerUuid: uuid })).usages).toEqual({ VCPU: 0n, MEMORY_MB: 0n });
    await placement.deleteAllocations({ consumerUuid: consumer });
  });

  it("refuses allocations against unknown providers or classes the provider lacks", async () => {
    const uuid = await provider(`lack-${randomUUID()}`, { VCPU: { total: 8 } });
    expect((await refusal(claim(randomUUID(), { VCPU: 1 }))).kind).toBe("invalid_input");
    expect((await refusal(claim(uuid, { DISK_GB: 1 }))).kind).toBe("conflict");
    expect((await refusal(claim(uuid, { VCPU: 0 }))).kind).toBe("invalid_input");
  });
});
