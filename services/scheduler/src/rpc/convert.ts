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
import { invalidInput } from "@stratus/runtime";
import type { ProviderAllocation } from "../placement/allocations.js";
import type { InventoryRecord } from "../placement/inventory.js";
import type { Provider } from "../placement/providers.js";

/**
 * An int64 of a request as the number the domain uses; invalid_input when it has no exact number
 * (past 2^53), which PostgreSQL's bigint would otherwise refuse as out of range.
 */
export function int64In(v: bigint, what: string): number {
  if (v > BigInt(Number.MAX_SAFE_INTEGER) || v < BigInt(Number.MIN_SAFE_INTEGER)) {
    throw invalidInput(`${what} ${v} is out of range`);
  }
  return Number(v);
}

export function resourcesIn(map: Record<string, bigint>): Record<string, number> {
  return Object.fromEntries(Object.entries(map).map(([rc, n]) => [rc, int64In(n, `amount of ${rc}`)]));
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
