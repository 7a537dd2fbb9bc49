import { describe, expect, it } from "vitest";
import { parsePhysnets, physnetsFor } from "./physnets.js";

describe("COMPUTE_PHYSNETS", () => {
  it("maps hosts by the first matching glob", () => {
    const rules = parsePhysnets("rack1-*=physnet-rack1,rack2-*=physnet-rack2+physnet-ext,*=default");
    expect(physnetsFor(rules, "rack1-7")).toEqual(["physnet-rack1"]);
    expect(physnetsFor(rules, "rack2-1")).toEqual(["physnet-rack2", "physnet-ext"]);
    expect(physnetsFor(rules, "edge")).toEqual(["default"]);
    expect(physnetsFor(parsePhysnets("rack1-?=a"), "rack1-10")).toEqual([]);
    expect(physnetsFor(parsePhysnets(""), "rack1-1")).toEqual([]);
  });
  it("treats glob characters other than * and ? literally", () => {
    const rules = parsePhysnets("rack.1=a");
    expect(physnetsFor(rules, "rack.1")).toEqual(["a"]);
    expect(physnetsFor(rules, "rackx1")).toEqual([]);
  });
  it("refuses malformed parts", () => {
    expect(() => parsePhysnets("rack1-*")).toThrow(/glob=physnet/);
    expect(() => parsePhysnets("=a")).toThrow(/glob=physnet/);
    expect(() => parsePhysnets("r[1]=a")).toThrow(/host glob/);
    expect(() => parsePhysnets("r=a b")).toThrow(/physical network/);
  });
});
