// What every request must be before it reaches the core, whatever its RPC: no string with a NUL
// character (PostgreSQL text cannot hold one: it would fail in the database, not as a refusal)
// and no string longer than its field allows (Neutron's 255 for names, descriptions and the
// device and host attributes; 64 for a physical network).
import { invalidInput } from "@stratus/runtime";

const FIELD_LIMITS: Record<string, number> = {
  name: 255,
  description: 255,
  deviceId: 255,
  deviceOwner: 255,
  host: 255,
  bindingHostId: 255,
  physicalNetwork: 64,
  projectId: 255,
};
/** Any other string: far more than any valid value of ours. */
const OTHER_LIMIT = 4096;

/** Throws invalid_input for the first string of `value` (a request, walked whole) out of bounds. */
export function checkRequestStrings(value: unknown, field = ""): void {
  if (typeof value === "string") {
    if (value.includes("\0")) {
      throw invalidInput(
        `Invalid input for operation: ${field || "a string"} may not contain a NUL character.`,
      );
    }
    const limit = FIELD_LIMITS[field] ?? OTHER_LIMIT;
    if (value.length > limit) {
      throw invalidInput(
        `Invalid input for operation: ${field || "a string"} is longer than ${limit} characters.`,
      );
    }
    return;
  }
  if (Array.isArray(value)) {
    for (const v of value) checkRequestStrings(v, field);
    return;
  }
  if (value && typeof value === "object") {
    for (const [k, v] of Object.entries(value)) {
      if (k === "$typeName") continue;
      checkRequestStrings(k, `${field || "a"} key`);
      checkRequestStrings(v, k);
    }
  }
}
