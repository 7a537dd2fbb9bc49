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
