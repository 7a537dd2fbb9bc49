// The rules judged before any SQL, each where it is defined: a new port's ip_allocation, the
// reading of a new fixed_ips list, a subnet's IP version, gateway, pools, DNS servers and host
// routes, a network's segments, list filter values, and the strings a request may carry.
import { create } from "@bufbuild/protobuf";
import { CreatePortRequestSchema, IpAllocation } from "@stratus/contracts/network/v1";
import { StratusError } from "@stratus/runtime";
import { describe, expect, it } from "vitest";
import { checkRequestStrings } from "../input-limits.js";
import { parseCidr, parseIp } from "../ipam/ipv4.js";
import { filterValue } from "./list-query.js";
import { fixedIpsChange } from "./port-update.js";
import { allocationMode } from "./rules.js";
import { checkSegmentSpecs } from "./segments.js";
import { checkIpVersion, gatewayOf, hostRoutesOf, nameserversOf, poolsOf } from "./subnet-spec.js";

const kindOf = (fn: () => unknown) => {
  try {
    fn();
  } catch (err) {
    if (err instanceof StratusError) return err.kind;
    throw err;
  }
  return "accepted";
};

describe("a new port's ip_allocation", () => {
  const mode = (init: Parameters<typeof create<typeof CreatePortRequestSchema>>[1], routed: boolean) =>
    allocationMode(create(CreatePortRequestSchema, init), routed);
  it("is what was asked, else none for fixed_ips [], deferred on a routed network without addresses or host", () => {
    expect(mode({ ipAllocation: IpAllocation.NONE }, true)).toBe(IpAllocation.NONE);
    expect(mode({ noFixedIps: true }, true)).toBe(IpAllocation.NONE);
    expect(mode({}, true)).toBe(IpAllocation.DEFERRED);
    expect(mode({ bindingHostId: "h" }, true)).toBe(IpAllocation.IMMEDIATE);
    expect(mode({ fixedIps: [{ subnetId: "s" }] }, true)).toBe(IpAllocation.IMMEDIATE);
    expect(mode({}, false)).toBe(IpAllocation.IMMEDIATE);
  });
});

describe("a new fixed_ips list against the addresses held", () => {
  const held = [
    { subnetId: "s1", ipAddress: "10.0.0.2" },
    { subnetId: "s1", ipAddress: "10.0.0.3" },
    { subnetId: "s2", ipAddress: "10.0.1.2" },
  ];
  const fixed = (subnetId: string, ipAddress = "") => ({
    $typeName: "stratus.network.v1.FixedIp" as const,
    subnetId,
    ipAddress,
  });
  it("keeps what is named and held, an address of a subnet named alone, and releases the rest", () => {
    const change = fixedIpsChange(held, [
      fixed("", "10.0.0.3"),
      fixed("s2"),
      fixed("s3"),
      fixed("s1", "10.0.0.9"),
    ]);
    expect(change.keep).toEqual([held[1], held[2]]);
    expect(change.add.map((f) => [f.subnetId, f.ipAddress])).toEqual([
      ["s1", "10.0.0.9"],
      ["s3", ""],
    ]);
    expect(change.remove).toEqual([held[0]]);
  });
  it("an address named with another subnet than its own is not the one held", () => {
    const change = fixedIpsChange(held, [fixed("s2", "10.0.0.2")]);
    expect(change.keep).toEqual([]);
    expect(change.add).toHaveLength(1);
    expect(change.remove).toEqual(held);
  });
  it("the same list again changes nothing", () => {
    const change = fixedIpsChange(
      held,
      held.map((h) => fixed(h.subnetId, h.ipAddress)),
    );
    expect([change.add, change.remove]).toEqual([[], []]);
  });
});

describe("a subnet's request", () => {
  const cidr = parseCidr("10.0.0.0/24");
  it("is IPv4 only", () => {
    expect(() => checkIpVersion(6, [])).toThrow("IPv6 subnets are not supported");
    expect(() => checkIpVersion(0, ["2001:db8::/64"])).toThrow("IPv6 subnets are not supported");
    expect(kindOf(() => checkIpVersion(5, []))).toBe("invalid_input");
    expect(kindOf(() => checkIpVersion(4, ["10.0.0.0/24"]))).toBe("accepted");
  });
  it("has the first host as gateway unless it names one or none", () => {
    expect(gatewayOf(cidr, "", false)).toBe(parseIp("10.0.0.1"));
    expect(gatewayOf(cidr, "10.0.0.254", false)).toBe(parseIp("10.0.0.254"));
    expect(gatewayOf(cidr, "", true)).toBeNull();
    expect(kindOf(() => gatewayOf(cidr, "10.0.0.255", false))).toBe("invalid_input");
  });
  it("has pools inside its cidr that overlap neither each other nor the gateway", () => {
    expect(poolsOf(cidr, parseIp("10.0.0.1"), [])).toEqual([
      { first: parseIp("10.0.0.2"), last: parseIp("10.0.0.254") },
    ]);
    const pool = (start: string, end: string) => ({
      $typeName: "stratus.network.v1.AllocationPool" as const,
      start,
      end,
    });
    expect(kindOf(() => poolsOf(cidr, null, [pool("10.0.0.9", "10.0.1.9")]))).toBe("invalid_input");
    expect(kindOf(() => poolsOf(cidr, null, [pool("10.0.0.9", "10.0.0.2")]))).toBe("invalid_input");
    expect(kindOf(() => poolsOf(cidr, parseIp("10.0.0.5"), [pool("10.0.0.2", "10.0.0.9")]))).toBe("conflict");
    expect(
      kindOf(() => poolsOf(cidr, null, [pool("10.0.0.2", "10.0.0.9"), pool("10.0.0.9", "10.0.0.20")])),
    ).toBe("conflict");
  });
  it("has at most five distinct DNS servers and twenty distinct host routes, all IPv4", () => {
    expect(nameserversOf("s", ["1.1.1.1", "8.8.8.8"])).toEqual(["1.1.1.1", "8.8.8.8"]);
    expect(() =>
      nameserversOf("s", ["1.1.1.1", "1.1.1.2", "1.1.1.3", "1.1.1.4", "1.1.1.5", "1.1.1.6"]),
    ).toThrow("Unable to complete operation for s. The number of DNS nameservers exceeds the limit 5.");
    expect(kindOf(() => nameserversOf("s", ["1.1.1.1", "1.1.1.1"]))).toBe("invalid_input");
    const route = (destination: string, nexthop: string) => ({
      $typeName: "stratus.network.v1.HostRoute" as const,
      destination,
      nexthop,
    });
    expect(hostRoutesOf("s", [route(" 192.168.0.0/16", "10.0.0.9")])).toEqual([
      { destination: "192.168.0.0/16", nexthop: "10.0.0.9" },
    ]);
    expect(
      kindOf(() =>
        hostRoutesOf(
          "s",
          Array.from({ length: 21 }, (_, i) => route(`10.${i}.0.0/16`, "10.0.0.9")),
        ),
      ),
    ).toBe("invalid_input");
    expect(kindOf(() => hostRoutesOf("s", [route("2001:db8::/64", "10.0.0.9")]))).toBe("invalid_input");
    expect(
      kindOf(() => hostRoutesOf("s", [route("10.9.0.0/16", "10.0.0.9"), route("10.9.0.0/16", "10.0.0.9")])),
    ).toBe("invalid_input");
  });
});

describe("a network's segments", () => {
  const seg = (networkType: string, physicalNetwork: string, segmentationId: number) => ({
    name: "",
    description: "",
    networkType,
    physicalNetwork,
    segmentationId,
  });
  it("have an id in their type's range, none for flat, a physical network only where it belongs, each once", () => {
    const accepted = [
      seg("vlan", "p", 1),
      seg("vlan", "p", 4094),
      seg("vxlan", "", 16_777_215),
      seg("geneve", "", 0),
      seg("flat", "p", 0),
    ];
    for (const s of accepted) expect(kindOf(() => checkSegmentSpecs([s]))).toBe("accepted");
    const refused = [
      seg("vlan", "p", 0),
      seg("vlan", "p", 4095),
      seg("vlan", "", 5),
      seg("vxlan", "", 16_777_216),
      seg("vxlan", "p", 5),
      seg("flat", "p", 5),
      seg("flat", "", 0),
      seg("gre", "", 5),
    ];
    for (const s of refused) expect(kindOf(() => checkSegmentSpecs([s]))).toBe("invalid_input");
    expect(() => checkSegmentSpecs([seg("vlan", "p", 7), seg("vlan", "p", 7)])).toThrow(
      "Duplicate segment entry in request.",
    );
    // Two tunnels that will each get an id of their own are not duplicates.
    expect(kindOf(() => checkSegmentSpecs([seg("vxlan", "", 0), seg("vxlan", "", 0)]))).toBe("accepted");
  });
});

describe("list filter values and request strings", () => {
  it("converts a filter value to its field's type or refuses it", () => {
    expect(filterValue("shared", "bool", "True")).toBe(true);
    expect(filterValue("shared", "bool", "0")).toBe(false);
    expect(filterValue("id", "uuid", "ABC")).toBe("abc");
    expect(kindOf(() => filterValue("shared", "bool", "yes"))).toBe("invalid_input");
    expect(kindOf(() => filterValue("mtu", "int", "9".repeat(19)))).toBe("invalid_input");
    expect(kindOf(() => filterValue("changed_since", "timestamp", "2026-12-01T10:00:00Z"))).toBe("accepted");
    expect(kindOf(() => filterValue("changed_since", "timestamp", "soon"))).toBe("invalid_input");
  });
  it("refuses a NUL anywhere, and strings longer than their field allows", () => {
    expect(kindOf(() => checkRequestStrings({ name: "ok", fixedIps: [{ ipAddress: "10.0.0.1" }] }))).toBe(
      "accepted",
    );
    expect(
      kindOf(() => checkRequestStrings({ query: { filters: [{ field: "name", values: ["a\0"] }] } })),
    ).toBe("invalid_input");
    expect(kindOf(() => checkRequestStrings({ bindingProfile: { "k\0": "v" } }))).toBe("invalid_input");
    expect(kindOf(() => checkRequestStrings({ name: "x".repeat(256) }))).toBe("invalid_input");
    expect(kindOf(() => checkRequestStrings({ physicalNetwork: "x".repeat(65) }))).toBe("invalid_input");
    expect(kindOf(() => checkRequestStrings({ cidr: "x".repeat(5000) }))).toBe("invalid_input");
  });
});
