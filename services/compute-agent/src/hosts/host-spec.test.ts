import { describe, expect, it } from "vitest";
import { expandHostPattern } from "./host-spec.js";

describe("expandHostPattern", () => {
  it("expands ranges and plain names", () => {
    expect(expandHostPattern("rack1-[1-3],edge")).toEqual(["rack1-1", "rack1-2", "rack1-3", "edge"]);
  });
  it("refuses malformed patterns and repeats", () => {
    expect(() => expandHostPattern("rack[3-1]")).toThrow(/backwards/);
    expect(() => expandHostPattern("a b")).toThrow(/not a host name/);
    expect(() => expandHostPattern("a,a")).toThrow(/repeat/);
  });
});

describe("computeNodeUuid", () => {
  it("is a stable version-5 uuid per host name", async () => {
    const { computeNodeUuid } = await import("./compute-node.js");
    const a = computeNodeUuid("rack1-1");
    expect(a).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(computeNodeUuid("rack1-1")).toBe(a);
    expect(computeNodeUuid("rack1-2")).not.toBe(a);
  });
});
