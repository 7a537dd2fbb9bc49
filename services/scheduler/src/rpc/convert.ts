// Protobuf ↔ domain conversions for the scheduler's RPC adapters (int64 fields are bigint on the
// wire, plain numbers in the domain).
import type { MessageInitShape } from "@bufbuild/protobuf";
import type {
  InventorySchema,
  MemberOf,
  ProviderAllocation as ProviderAllocationMessage,
  ProviderAllocationSchema,
  ResourceProviderSchema,
} from "@stratus/contracts/scheduler/v1/placement";
import type { ProviderAllocation } from "../placement/allocations.js";
import type { InventoryRecord } from "../placement/inventory.js";
import type { Provider } from "../placement/providers.js";

export function resourcesIn(map: Record<string, bigint>): Record<string, number> {
  return Object.fromEntries(Object.entries(map).map(([rc, n]) => [rc, Number(n)]));
}

export function resourcesOut(map: Record<string, number>): Record<string, bigint> {
  return Object.fromEntries(Object.entries(map).map(([rc, n]) => [rc, BigInt(n)]));
}

export function providerOut(p: Provider): MessageInitShape<typeof ResourceProviderSchema> {
  return {
    uuid: p.uuid,
    name: p.name,
    generation: BigInt(p.generation),
    parentProviderUuid: p.parentUuid,
    rootProviderUuid: p.rootUuid,
  };
}

export function inventoryOut(inv: InventoryRecord): MessageInitShape<typeof InventorySchema> {
  return {
    resourceClass: inv.resourceClass,
    total: BigInt(inv.total),
    reserved: BigInt(inv.reserved),
    minUnit: BigInt(inv.minUnit),
    maxUnit: BigInt(inv.maxUnit),
    stepSize: BigInt(inv.stepSize),
    allocationRatio: inv.allocationRatio,
  };
}

export function allocationsIn(list: ProviderAllocationMessage[]): ProviderAllocation[] {
  return list.map((a) => ({ providerUuid: a.providerUuid, resources: resourcesIn(a.resources) }));
}

export function allocationsOut(
  list: ProviderAllocation[],
): MessageInitShape<typeof ProviderAllocationSchema>[] {
  return list.map((a) => ({ providerUuid: a.providerUuid, resources: resourcesOut(a.resources) }));
}

export function memberOfIn(list: MemberOf[]): string[][] {
  return list.map((m) => [...m.aggregateUuids]);
}
