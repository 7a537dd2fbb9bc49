import { describe, expect, it } from "vitest";
import {
  defaultGateway,
  defaultPools,
  firstFreeBlock,
  formatCidr,
  formatIp,
  hostRange,
  isValidHostAddress,
  parseCidr,
  parseIp,
  poolSize,
  validatePools,
} from "./ipv4.js";

const range = (a: string, b: string) => ({ first: parseIp(a), last: parseIp(b) });
const text = (rs: { first: number; last: number }[]) =>
  rs.map((r) => `${formatIp(r.first)}-${formatIp(r.last)}`);

describe("IPv4 addresses and CIDRs", () => {
  it("round-trips addresses, including the top of the space", () => {
    for (const ip of ["0.0.0.0", "10.0.0.1", "192.168.255.254", "255.255.255.255"]) {
      expect(formatIp(parseIp(ip))).toBe(ip);
    }
    expect(parseIp("255.255.255.255")).toBe(4294967295);
  });

  it("refuses malformed addresses", () => {
    for (const bad of ["10.0.0", "10.0.0.256", "a.b.c.d", "10.0.0.01", "", "1.2.3.4.5"]) {
      expect(() => parseIp(bad), bad).toThrow(/not a valid IPv4 address/);
    }
  });

  it("parses CIDRs and refuses host bits", () => {
    const c = parseCidr("10.1.2.0/24");
    expect(c).toMatchObject({ prefix: 24, size: 256 });
    expect(formatIp(c.last)).toBe("10.1.2.255");
    expect(() => parseCidr("10.1.2.3/24")).toThrow(/host bits set; did you mean 10.1.2.0\/24/);
    expect(() => parseCidr("10.1.2.0/33")).toThrow(/prefix length/);
    expect(() => parseCidr("10.1.2.0")).toThrow(/not a valid IPv4 CIDR/);
  });

  it("excludes network and broadcast addresses except on /31 and /32", () => {
    const c24 = parseCidr("10.0.0.0/24");
    expect(text([hostRange(c24)])).toEqual(["10.0.0.1-10.0.0.254"]);
    expect(isValidHostAddress(c24, parseIp("10.0.0.0"))).toBe(false);
    expect(isValidHostAddress(c24, parseIp("10.0.0.255"))).toBe(false);
    expect(text([hostRange(parseCidr("10.0.0.0/31"))])).toEqual(["10.0.0.0-10.0.0.1"]);
    expect(text([hostRange(parseCidr("10.0.0.7/32"))])).toEqual(["10.0.0.7-10.0.0.7"]);
  });
});

describe("allocation pools", () => {
  it("defaults to the whole CIDR minus network, broadcast and gateway: 253 addresses in a /24", () => {
    const c = parseCidr("10.0.0.0/24");
    const gw = defaultGateway(c);
    expect(formatIp(gw)).toBe("10.0.0.1");
    const pools = defaultPools(c, gw);
    expect(text(pools)).toEqual(["10.0.0.2-10.0.0.254"]);
    expect(poolSize(pools)).toBe(253);
  });

  it("splits around a gateway in the middle, and keeps everything without a gateway", () => {
    const c = parseCidr("10.0.0.0/28");
    expect(text(defaultPools(c, parseIp("10.0.0.5")))).toEqual(["10.0.0.1-10.0.0.4", "10.0.0.6-10.0.0.14"]);
    expect(poolSize(defaultPools(c, null))).toBe(14);
  });

  it("validates explicit pools: inside the host range, ordered, disjoint, without the gateway", () => {
    const c = parseCidr("10.0.0.0/24");
    const gw = parseIp("10.0.0.1");
    expect(
      text(validatePools(c, gw, [range("10.0.0.100", "10.0.0.110"), range("10.0.0.10", "10.0.0.20")])),
    ).toEqual(["10.0.0.10-10.0.0.20", "10.0.0.100-10.0.0.110"]);
    expect(() => validatePools(c, gw, [range("10.0.0.20", "10.0.0.10")])).toThrow(/start is after end/);
    expect(() => validatePools(c, gw, [range("10.0.0.250", "10.0.0.255")])).toThrow(/outside the usable/);
    expect(() =>
      validatePools(c, gw, [range("10.0.0.10", "10.0.0.20"), range("10.0.0.15", "10.0.0.30")]),
    ).toThrow(/overlap/);
    expect(() => validatePools(c, gw, [range("10.0.0.1", "10.0.0.20")])).toThrow(
      /gateway ip 10.0.0.1 conflicts/,
    );
  });
});

describe("subnet pool blocks", () => {
  it("takes the first free aligned block, skipping taken ones", () => {
    const space = [parseCidr("10.10.0.0/16")];
    expect(formatCidr(firstFreeBlock(space, 24, [])!)).toBe("10.10.0.0/24");
    const taken = [range("10.10.0.0", "10.10.0.255"), range("10.10.1.128", "10.10.1.191")];
    expect(formatCidr(firstFreeBlock(space, 24, taken)!)).toBe("10.10.2.0/24");
    expect(formatCidr(firstFreeBlock(space, 26, taken)!)).toBe("10.10.1.0/26");
  });

  it("moves on to the next prefix and reports no room as null", () => {
    const space = [parseCidr("10.0.0.0/30"), parseCidr("10.0.1.0/29")];
    expect(formatCidr(firstFreeBlock(space, 29, [])!)).toBe("10.0.1.0/29");
    expect(firstFreeBlock(space, 29, [range("10.0.1.0", "10.0.1.7")])).toBeNull();
    expect(firstFreeBlock([parseCidr("10.0.0.0/24")], 16, [])).toBeNull();
  });
});
