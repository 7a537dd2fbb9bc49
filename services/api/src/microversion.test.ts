import { isStratusError } from "@stratus/runtime";
import { describe, expect, it } from "vitest";
import { at, formatVersion, MAX_VERSION, negotiateVersion, parseVersionString } from "./microversion.js";

const kindOf = (fn: () => unknown) => {
  try {
    fn();
  } catch (err) {
    if (isStratusError(err, "invalid_input")) return "invalid_input";
    if (isStratusError(err, "version_not_acceptable")) return "version_not_acceptable";
    throw err;
  }
  return "ok";
};

describe("microversions", () => {
  it("parses X.Y only", () => {
    expect(parseVersionString("2.37")).toEqual({ major: 2, minor: 37 });
    for (const bad of ["2", "2.", ".1", "2.x", "v2.1", "2.1.1", "", " "])
      expect(parseVersionString(bad), bad).toBeUndefined();
  });

  it("no header is the minimum, latest the maximum, the standard header wins over the legacy one", () => {
    expect(formatVersion(negotiateVersion({}))).toBe("2.1");
    expect(negotiateVersion({ standard: "compute latest" })).toEqual(MAX_VERSION);
    expect(formatVersion(negotiateVersion({ standard: "compute 2.36", legacy: "2.10" }))).toBe("2.36");
    expect(formatVersion(negotiateVersion({ legacy: "2.10" }))).toBe("2.10");
    expect(formatVersion(negotiateVersion({ standard: "volume 3.5, compute 2.44" }))).toBe("2.44");
    // Another service's entry only: as if no compute version were asked for (then the legacy one).
    expect(formatVersion(negotiateVersion({ standard: "volume 3.5", legacy: "2.20" }))).toBe("2.20");
  });

  it("malformed is invalid input (400); out of range is not acceptable (406)", () => {
    expect(kindOf(() => negotiateVersion({ standard: "compute 2.x" }))).toBe("invalid_input");
    expect(kindOf(() => negotiateVersion({ legacy: "abc" }))).toBe("invalid_input");
    expect(kindOf(() => negotiateVersion({ standard: "compute 2.0" }))).toBe("version_not_acceptable");
    expect(kindOf(() => negotiateVersion({ standard: `compute 2.${MAX_VERSION.minor + 1}` }))).toBe(
      "version_not_acceptable",
    );
    expect(kindOf(() => negotiateVersion({ standard: "compute 3.0" }))).toBe("version_not_acceptable");
  });

  it("change points switch exactly at their version", () => {
    const v = (s: string) => parseVersionString(s)!;
    expect(at(v("2.35"), "networkLimitsRemoved")).toBe(false);
    expect(at(v("2.36"), "networkLimitsRemoved")).toBe(true);
    expect(at(v("2.36"), "getMeANetwork")).toBe(false);
    expect(at(v("2.37"), "getMeANetwork")).toBe(true);
    expect(at(v("2.43"), "virtualInterfacesRemoved")).toBe(false);
    expect(at(v("2.44"), "virtualInterfacesRemoved")).toBe(true);
    expect(at(v("2.100"), "virtualInterfacesRemoved")).toBe(true);
  });
});
