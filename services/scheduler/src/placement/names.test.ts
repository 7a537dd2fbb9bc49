import { describe, expect, it } from "vitest";
import { isValidResourceClass, isValidTrait } from "./names.js";

describe("resource class and trait names", () => {
  it("accepts standard and CUSTOM_ classes only", () => {
    for (const ok of ["VCPU", "MEMORY_MB", "DISK_GB", "IPV4_ADDRESS", "SRIOV_NET_VF", "CUSTOM_GOLD_1"]) {
      expect(isValidResourceClass(ok)).toBe(true);
    }
    for (const bad of ["vcpu", "CUSTOM_", "CUSTOM_a", "GPU", "", "CUSTOM_X-Y"])
      expect(isValidResourceClass(bad)).toBe(false);
  });

  it("accepts standard trait families and CUSTOM_ traits", () => {
    for (const ok of [
      "MISC_SHARES_VIA_AGGREGATE",
      "HW_CPU_X86_AVX2",
      "COMPUTE_STATUS_DISABLED",
      "STORAGE_DISK_SSD",
      "CUSTOM_RACK_1",
    ]) {
      expect(isValidTrait(ok)).toBe(true);
    }
    for (const bad of ["hw_cpu", "SOMETHING_ELSE", "CUSTOM_lower", ""]) expect(isValidTrait(bad)).toBe(false);
  });
});
