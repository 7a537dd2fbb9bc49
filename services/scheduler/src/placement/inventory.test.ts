import { StratusError } from "@stratus/runtime";
import { describe, expect, it } from "vitest";
import { assertAllocatable, capacityOf, normalizeInventory, unitViolation } from "./inventory.js";

const refusedWith = (fn: () => void): StratusError => {
  try {
    fn();
  } catch (err) {
    if (err instanceof StratusError) return err;
    throw err;
  }
  throw new Error("expected a refusal");
};

describe("inventory arithmetic", () => {
  it("fills Placement's defaults", () => {
    expect(normalizeInventory({ resourceClass: "VCPU", total: 8 })).toEqual({
      resourceClass: "VCPU",
      total: 8,
      reserved: 0,
      minUnit: 1,
      maxUnit: 8,
      stepSize: 1,
      allocationRatio: 1,
    });
  });

  it("capacity = (total - reserved) * allocation_ratio, rounded down", () => {
    expect(capacityOf({ total: 16, reserved: 2, allocationRatio: 4 })).toBe(56);
    expect(capacityOf({ total: 10, reserved: 0, allocationRatio: 1.5 })).toBe(15);
    expect(capacityOf({ total: 3, reserved: 0, allocationRatio: 0.5 })).toBe(1);
    expect(capacityOf({ total: 4, reserved: 4, allocationRatio: 16 })).toBe(0);
  });

  it("allocates up to capacity and refuses one more", () => {
    const inv = normalizeInventory({
      resourceClass: "VCPU",
      total: 4,
      reserved: 1,
      allocationRatio: 2,
      maxUnit: 6,
    });
    expect(() => assertAllocatable("rp", inv, 0, 6)).not.toThrow();
    expect(() => assertAllocatable("rp", inv, 5, 1)).not.toThrow();
    const err = refusedWith(() => assertAllocatable("rp", inv, 6, 1));
    expect(err.kind).toBe("conflict");
    expect(err.message).toMatch(/exceed the capacity/);
  });

  it("checks min_unit, max_unit and step_size", () => {
    const inv = { minUnit: 2, maxUnit: 8, stepSize: 2 };
    expect(unitViolation(inv, 4)).toBeUndefined();
    expect(unitViolation(inv, 1)).toMatch(/min_unit/);
    expect(unitViolation(inv, 10)).toMatch(/max_unit/);
    expect(unitViolation(inv, 5)).toMatch(/step_size/);
    const full = normalizeInventory({
      resourceClass: "DISK_GB",
      total: 100,
      minUnit: 2,
      maxUnit: 8,
      stepSize: 2,
    });
    expect(refusedWith(() => assertAllocatable("rp", full, 0, 3)).message).toMatch(/inventory constraints/);
  });

  it("refuses impossible inventories", () => {
    for (const bad of [
      { resourceClass: "VCPU", total: 0 },
      { resourceClass: "VCPU", total: 4, reserved: 5 },
      { resourceClass: "VCPU", total: 4, minUnit: 5, maxUnit: 4 },
      { resourceClass: "VCPU", total: 4, allocationRatio: -1 },
      { resourceClass: "vcpu", total: 4 },
      { resourceClass: "VCPU", total: 1.5 },
    ]) {
      expect(refusedWith(() => normalizeInventory(bad)).kind).toBe("invalid_input");
    }
    // reserved == total is allowed (Placement 1.26+).
    expect(capacityOf(normalizeInventory({ resourceClass: "VCPU", total: 4, reserved: 4 }))).toBe(0);
  });
});
