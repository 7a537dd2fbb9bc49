import { describe, expect, it } from "vitest";
import { type HostState, weighHosts } from "./weighers.js";

const host = (name: string, ramFree: number, vcpuFree: number, ipFree?: number): HostState => ({
  host: name,
  ramFree,
  ramCapacity: 65536,
  vcpuFree,
  vcpuCapacity: 64,
  ipFree,
});

const best = (hosts: HostState[], kind: "spread" | "pack") => {
  const w = weighHosts(hosts, kind);
  return hosts[w.indexOf(Math.max(...w))]!.host;
};

describe("weighers", () => {
  it("spread prefers the most free RAM and VCPU, pack the least", () => {
    const hosts = [host("small", 2048, 2), host("big", 60000, 60), host("mid", 30000, 30)];
    expect(best(hosts, "spread")).toBe("big");
    expect(best(hosts, "pack")).toBe("small");
  });

  it("prefers the segment with more free addresses when hosts are otherwise equal", () => {
    const hosts = [host("a", 8192, 8, 3), host("b", 8192, 8, 200)];
    expect(best(hosts, "spread")).toBe("b");
    expect(best(hosts, "pack")).toBe("b");
  });

  it("breaks ties on absolute free by the emptier ratio", () => {
    const hosts: HostState[] = [
      { host: "half-full", ramFree: 4096, ramCapacity: 8192, vcpuFree: 4, vcpuCapacity: 8 },
      { host: "empty", ramFree: 4096, ramCapacity: 4096, vcpuFree: 4, vcpuCapacity: 4 },
    ];
    expect(best(hosts, "spread")).toBe("empty");
  });
});
