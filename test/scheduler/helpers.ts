// Helpers for the scheduler's integration tests: register hosts and segments the way the
// compute-agent and network-adapter do, over PlacementService.
import { randomUUID } from "node:crypto";
import { PlacementService } from "@stratus/contracts/scheduler/v1/placement";
import { StratusError, serviceClient } from "@stratus/runtime";
import { type Mesh, startMesh } from "@stratus/runtime/testing";
import { afterAll, beforeAll } from "vitest";

export type PlacementClient = ReturnType<typeof serviceClient<typeof PlacementService>>;

/**
 * A scheduler process of the calling test file's own, started before its tests and stopped after
 * them; `placement` is its PlacementService client from then on.
 */
export function fileScheduler(): { readonly placement: PlacementClient } {
  let mesh: Mesh | undefined;
  const started = {} as { placement: PlacementClient };
  beforeAll(async () => {
    mesh = await startMesh({ services: ["scheduler"] });
    started.placement = serviceClient(PlacementService, mesh.url("scheduler"));
  });
  afterAll(async () => {
    await mesh?.close();
  });
  return started;
}

export async function refusal(p: Promise<unknown>): Promise<StratusError> {
  try {
    await p;
  } catch (err) {
    if (err instanceof StratusError) return err;
    throw err;
  }
  throw new Error("expected the call to be refused");
}

export const big = (r: Record<string, number>) =>
  Object.fromEntries(Object.entries(r).map(([k, v]) => [k, BigInt(v)]));

/** A compute node: EnsureResourceProvider(uuid, name=host) + VCPU/MEMORY_MB/DISK_GB. */
export async function registerHost(
  placement: PlacementClient,
  host: string,
  sizes: { vcpu: number; ramMb: number; diskGb: number; cpuRatio?: number },
  extra: { traits?: string[]; aggregates?: string[] } = {},
): Promise<string> {
  const uuid = randomUUID();
  await placement.ensureResourceProvider({ uuid, name: host });
  let gen = (
    await placement.setInventories({
      providerUuid: uuid,
      providerGeneration: 0n,
      inventories: [
        { resourceClass: "VCPU", total: BigInt(sizes.vcpu), allocationRatio: sizes.cpuRatio ?? 1 },
        { resourceClass: "MEMORY_MB", total: BigInt(sizes.ramMb) },
        { resourceClass: "DISK_GB", total: BigInt(sizes.diskGb) },
      ],
    })
  ).providerGeneration;
  if (extra.traits) {
    gen = (await placement.setTraits({ providerUuid: uuid, providerGeneration: gen, traits: extra.traits }))
      .providerGeneration;
  }
  if (extra.aggregates) {
    await placement.setAggregates({
      providerUuid: uuid,
      providerGeneration: gen,
      aggregateUuids: extra.aggregates,
    });
  }
  return uuid;
}

/** A routed-network segment: IPV4_ADDRESS inventory, sharing trait, aggregate = segment id. */
export async function registerSegment(placement: PlacementClient, addresses: number): Promise<string> {
  const id = randomUUID();
  await placement.ensureResourceProvider({ uuid: id, name: `segment-${id}` });
  let gen = (
    await placement.setInventories({
      providerUuid: id,
      providerGeneration: 0n,
      inventories: [{ resourceClass: "IPV4_ADDRESS", total: BigInt(addresses) }],
    })
  ).providerGeneration;
  gen = (
    await placement.setTraits({
      providerUuid: id,
      providerGeneration: gen,
      traits: ["MISC_SHARES_VIA_AGGREGATE"],
    })
  ).providerGeneration;
  await placement.setAggregates({ providerUuid: id, providerGeneration: gen, aggregateUuids: [id] });
  return id;
}

/** Adds an aggregate to a provider keeping its others, retrying on generation conflicts. */
export async function addAggregate(placement: PlacementClient, providerUuid: string, aggregate: string) {
  for (let attempt = 0; ; attempt++) {
    const current = await placement.getAggregates({ providerUuid });
    try {
      return await placement.setAggregates({
        providerUuid,
        providerGeneration: current.providerGeneration,
        aggregateUuids: [...current.aggregateUuids, aggregate],
      });
    } catch (err) {
      if (!(err instanceof StratusError && err.kind === "conflict") || attempt > 10) throw err;
    }
  }
}
