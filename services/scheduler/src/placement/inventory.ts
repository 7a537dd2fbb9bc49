// Inventory arithmetic (Placement §7.2): defaults, validation, capacity and whether an amount
// may be allocated, and an inventory's row form. Pure functions: the SQL side enforces the same
// rules inside transactions.
import { conflict, invalidInput } from "@stratus/runtime";
import { assertResourceClass } from "./names.js";

export interface InventoryRecord {
  resourceClass: string;
  total: number;
  reserved: number;
  minUnit: number;
  maxUnit: number;
  stepSize: number;
  allocationRatio: number;
}

export type InventoryInput = Partial<InventoryRecord> & { resourceClass: string; total: number };

/** A row of the inventories table, as the drivers return it (bigint columns may be strings). */
export interface InventoryRow {
  resource_class: string;
  total: string | number;
  reserved: string | number;
  min_unit: string | number;
  max_unit: string | number;
  step_size: string | number;
  allocation_ratio: string | number;
  used: string | number;
  [k: string]: unknown;
}

export function toInventory(r: InventoryRow): InventoryRecord {
  return {
    resourceClass: r.resource_class,
    total: Number(r.total),
    reserved: Number(r.reserved),
    minUnit: Number(r.min_unit),
    maxUnit: Number(r.max_unit),
    stepSize: Number(r.step_size),
    allocationRatio: Number(r.allocation_ratio),
  };
}

/** Fills Placement's defaults for 0/unset fields: reserved 0, min 1, max = total, step 1, ratio 1.0. */
export function normalizeInventory(input: InventoryInput): InventoryRecord {
  assertResourceClass(input.resourceClass);
  const rc = input.resourceClass;
  const inv: InventoryRecord = {
    resourceClass: rc,
    total: input.total,
    reserved: input.reserved || 0,
    minUnit: input.minUnit || 1,
    maxUnit: input.maxUnit || input.total,
    stepSize: input.stepSize || 1,
    allocationRatio: input.allocationRatio || 1.0,
  };
  for (const key of ["total", "reserved", "minUnit", "maxUnit", "stepSize"] as const) {
    if (!Number.isSafeInteger(inv[key]) || inv[key] < 0) {
      throw invalidInput(`${rc}: ${key} must be a non-negative integer, got ${inv[key]}`);
    }
  }
  if (inv.total < 1) throw invalidInput(`${rc}: total must be at least 1`);
  if (inv.reserved > inv.total) {
    throw invalidInput(`${rc}: reserved (${inv.reserved}) must not exceed total (${inv.total})`);
  }
  if (inv.minUnit > inv.maxUnit) {
    throw invalidInput(`${rc}: min_unit (${inv.minUnit}) must not exceed max_unit (${inv.maxUnit})`);
  }
  if (!(Number.isFinite(inv.allocationRatio) && inv.allocationRatio > 0)) {
    throw invalidInput(`${rc}: allocation_ratio must be a positive number`);
  }
  return inv;
}

/** capacity = (total − reserved) × allocation_ratio, rounded down as Placement does. */
export function capacityOf(inv: Pick<InventoryRecord, "total" | "reserved" | "allocationRatio">): number {
  return Math.floor((inv.total - inv.reserved) * inv.allocationRatio);
}

/** Why an amount violates the unit constraints, or undefined when it fits them. */
export function unitViolation(
  inv: Pick<InventoryRecord, "minUnit" | "maxUnit" | "stepSize">,
  amount: number,
): string | undefined {
  if (amount < inv.minUnit) return `${amount} is below min_unit ${inv.minUnit}`;
  if (amount > inv.maxUnit) return `${amount} is above max_unit ${inv.maxUnit}`;
  if (amount % inv.stepSize !== 0) return `${amount} is not a multiple of step_size ${inv.stepSize}`;
  return undefined;
}

/**
 * Checks one allocation of `amount` against an inventory that already has `used` allocated;
 * throws conflict as Placement answers 409 for both kinds of refusal.
 */
export function assertAllocatable(
  providerUuid: string,
  inv: InventoryRecord,
  used: number,
  amount: number,
): void {
  const unit = unitViolation(inv, amount);
  if (unit) {
    throw conflict(
      `Unable to allocate inventory for resource provider ${providerUuid}: ${inv.resourceClass} ${unit}; the request would violate inventory constraints.`,
    );
  }
  const capacity = capacityOf(inv);
  if (used + amount > capacity) {
    throw conflict(
      `Unable to allocate inventory for resource provider ${providerUuid}: ${inv.resourceClass} used ${used} + requested ${amount} exceeds capacity ${capacity}. The requested amount would exceed the capacity.`,
    );
  }
}
