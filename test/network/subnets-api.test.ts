// Subnets and subnet pools through the Networking API's operations, over RPC with placement in
// the mesh: attributes (DNS servers, host routes, description), IPv6 refused, Neutron's refusals
// of pools and gateways (400 or 409 as Neutron), cidrs from pools (the default one, a block named),
// the routed-network rules (all or none, the one migration allowed), updates that keep placement
// in step (a network becoming routed, new pools, a /12), deletion while in use, and pool updates.
import { randomUUID } from "node:crypto";
import { SubnetChangedSchema } from "@stratus/contracts/events/v1";
import { PlacementService } from "@stratus/contracts/scheduler/v1/placement";
import { serviceClient } from "@stratus/runtime";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  type AdapterUnderTest,
  asProject,
  eventually,
  type NetworkClient,
  published,
  refusal,
  startAdapter,
  tenantNetwork,
} from "./helpers.js";

describe("subnets and subnet pools through the Networking API's operations", () => {
  let adapter: AdapterUnderTest;
  let net: NetworkClient;
  let placement: ReturnType<typeof serviceClient<typeof PlacementService>>;
  /** What placement holds as the segment's allocatable addresses (0: no provider or inventory). */
  const addresses = async (segmentId: string) => {
    try {
      const inv = await placement.getInventories({ providerUuid: segmentId });
      const ip = inv.inventories.find((i) => i.resourceClass === "IPV4_ADDRESS");
      return ip ? Number(ip.total) - Number(ip.reserved) : 0;
    } catch {
      return 0;
    }
  };

  beforeAll(async () => {
    adapter = await startAdapter({ events: "stratus.subnet.>", scheduler: true });
    net = adapter.net;
    placement = serviceClient(PlacementService, adapter.mesh.url("scheduler"));
  });
  afterAll(async () => {
    await adapter?.close();
  });

  it("keeps DNS servers, host routes and a description, and refuses IPv6", async () => {
    const { network } = await net.createNetwork({ name: "attrs", projectId: "p1" });
    const { subnet } = await net.createSubnet({
      networkId: network!.id,
      cidr: "10.100.0.0/24",
      description: "web tier",
      enableDhcp: true,
      dnsNameservers: ["10.100.0.53", "8.8.8.8"],
      hostRoutes: [{ destination: "192.168.0.0/16", nexthop: "10.100.0.254" }],
    });
    expect(subnet).toMatchObject({
      description: "web tier",
      enableDhcp: true,
      dnsNameservers: ["10.100.0.53", "8.8.8.8"],
      hostRoutes: [expect.objectContaining({ destination: "192.168.0.0/16", nexthop: "10.100.0.254" })],
      revisionNumber: 1n,
    });
    for (const req of [
      { networkId: network!.id, cidr: "2001:db8::/64", ipVersion: 6 },
      { networkId: network!.id, cidr: "2001:db8::/64" },
      { networkId: network!.id, ipVersion: 6, subnetpoolId: randomUUID() },
    ]) {
      const err = await refusal(net.createSubnet(req));
      expect(err.kind).toBe("invalid_input");
      expect(err.message).toBe("IPv6 subnets are not supported");
    }
    const bad = [
      { dnsNameservers: ["1.1.1.1", "1.1.1.2", "1.1.1.3", "1.1.1.4", "1.1.1.5", "1.1.1.6"] },
      { dnsNameservers: ["1.1.1.1", "1.1.1.1"] },
      { dnsNameservers: ["not-an-ip"] },
      { hostRoutes: [{ destination: "192.168.0.1/16", nexthop: "10.101.0.1" }] },
      { hostRoutes: [{ destination: "192.168.0.0/16", nexthop: "nowhere" }] },
    ];
    for (const extra of bad) {
      expect(
        (await refusal(net.createSubnet({ networkId: network!.id, cidr: "10.101.0.0/24", ...extra }))).kind,
      ).toBe("invalid_input");
    }
    const { subnet: updated } = await net.updateSubnet({
      id: subnet!.id,
      name: "web",
      updateDnsNameservers: true,
      dnsNameservers: [],
      updateHostRoutes: true,
      hostRoutes: [],
      enableDhcp: false,
    });
    expect(updated).toMatchObject({
      name: "web",
      dnsNameservers: [],
      hostRoutes: [],
      enableDhcp: false,
      revisionNumber: 2n,
    });
    await eventually(async () => {
      const updatedIds = published(adapter, "stratus.subnet.updated", SubnetChangedSchema).map(
        (m) => m.subnetId,
      );
      expect(updatedIds).toContain(subnet!.id);
    });
  });

  it("judges pools and gateways as Neutron: out of range 400, overlapping or holding the gateway 409", async () => {
    const { network } = await net.createNetwork({ name: "pools", projectId: "p1" });
    const cidr = "10.102.0.0/24";
    const overlapping = await refusal(
      net.createSubnet({
        networkId: network!.id,
        cidr,
        allocationPools: [
          { start: "10.102.0.10", end: "10.102.0.20" },
          { start: "10.102.0.15", end: "10.102.0.30" },
        ],
      }),
    );
    expect(overlapping.kind).toBe("conflict");
    expect(overlapping.message).toBe(
      "Found overlapping allocation pools: 10.102.0.10-10.102.0.20 10.102.0.15-10.102.0.30 for subnet 10.102.0.0/24.",
    );
    const holdsGateway = await refusal(
      net.createSubnet({
        networkId: network!.id,
        cidr,
        allocationPools: [{ start: "10.102.0.1", end: "10.102.0.9" }],
      }),
    );
    expect(holdsGateway.kind).toBe("conflict");
    expect(
      (
        await refusal(
          net.createSubnet({
            networkId: network!.id,
            cidr,
            allocationPools: [{ start: "10.102.1.1", end: "10.102.1.9" }],
          }),
        )
      ).kind,
    ).toBe("invalid_input");

    const { subnet } = await net.createSubnet({
      networkId: network!.id,
      cidr,
      allocationPools: [{ start: "10.102.0.10", end: "10.102.0.20" }],
    });
    const held = (await net.createPort({ networkId: network!.id })).port!.fixedIps[0]!.ipAddress;
    expect(held).toBe("10.102.0.10");
    // A gateway moved into the pools is refused; out of them, or none, is fine.
    expect(
      (await refusal(net.updateSubnet({ id: subnet!.id, updateGatewayIp: true, gatewayIp: "10.102.0.15" })))
        .kind,
    ).toBe("conflict");
    expect(
      (await net.updateSubnet({ id: subnet!.id, updateGatewayIp: true, gatewayIp: "10.102.0.254" })).subnet!
        .gatewayIp,
    ).toBe("10.102.0.254");
    expect(
      (await net.updateSubnet({ id: subnet!.id, updateGatewayIp: true, gatewayIp: "" })).subnet!.gatewayIp,
    ).toBe("");
    // New pools: what is held stays held, the rest of the new pools is handed out lowest first.
    await net.updateSubnet({
      id: subnet!.id,
      updateAllocationPools: true,
      allocationPools: [{ start: "10.102.0.1", end: "10.102.0.11" }],
    });
    const next = await Promise.all(
      [1, 2].map(async () => (await net.createPort({ networkId: network!.id })).port!),
    );
    expect(next.map((p) => p.fixedIps[0]!.ipAddress).sort()).toEqual(["10.102.0.1", "10.102.0.2"]);
  });

  it("takes cidrs from pools: the default one, the first free block, or the block named", async () => {
    const { network } = await net.createNetwork({ name: "from-pools", projectId: "p1" });
    const noDefault = await refusal(net.createSubnet({ networkId: network!.id, useDefaultSubnetpool: true }));
    expect(noDefault.message).toBe("Bad subnets request: No default subnetpool found for IPv4.");
    const { pool } = await net.createSubnetPool({
      pool: {
        name: "default",
        prefixes: ["172.20.0.0/16"],
        defaultPrefixlen: 24,
        isDefault: true,
        shared: true,
      },
    });
    const first = (await net.createSubnet({ networkId: network!.id, useDefaultSubnetpool: true })).subnet!;
    expect(first).toMatchObject({ cidr: "172.20.0.0/24", subnetpoolId: pool!.id, gatewayIp: "172.20.0.1" });
    const named = (
      await net.createSubnet({ networkId: network!.id, subnetpoolId: pool!.id, cidr: "172.20.9.0/24" })
    ).subnet!;
    expect(named.cidr).toBe("172.20.9.0/24");
    for (const cidr of ["172.20.9.128/25", "172.21.0.0/24"]) {
      const { network: other } = await net.createNetwork({ name: `o-${cidr}`, projectId: "p1" });
      const err = await refusal(net.createSubnet({ networkId: other!.id, subnetpoolId: pool!.id, cidr }));
      expect(err.kind).toBe("conflict");
      expect(err.message).toBe(
        "Failed to allocate subnet: Cannot allocate requested subnet from the available set of prefixes.",
      );
    }
    expect(
      (
        await refusal(
          net.createSubnet({ networkId: network!.id, subnetpoolId: pool!.id, useDefaultSubnetpool: true }),
        )
      ).kind,
    ).toBe("invalid_input");
  });

  it("routed networks: all subnets on segments or none; one subnet of a one-segment network may become routed", async () => {
    const { network } = await net.createNetwork({
      name: "to-route",
      segments: [{ name: "only", networkType: "vlan", physicalNetwork: "physnet-r1", segmentationId: 701 }],
    });
    const segmentId = network!.segments[0]!.id;
    const { subnet } = await net.createSubnet({ networkId: network!.id, cidr: "10.103.0.0/24" });
    expect(await addresses(segmentId)).toBe(0);
    const mixed = await refusal(
      net.createSubnet({ networkId: network!.id, segmentId, cidr: "10.104.0.0/24" }),
    );
    expect(mixed.message).toBe(
      `All of the subnets on network '${network!.id}' must either all be associated with segments or all not associated with any segment.`,
    );
    const wrong = await refusal(net.updateSubnet({ id: subnet!.id, segmentId: randomUUID() }));
    expect(wrong.kind).toBe("invalid_input");
    // The migration to a routed network: the subnet bound to the network's one segment.
    const { subnet: bound } = await net.updateSubnet({ id: subnet!.id, segmentId });
    expect(bound!.segmentId).toBe(segmentId);
    const routed = (await net.getNetwork({ id: network!.id })).network!;
    expect(routed).toMatchObject({ routed: true, l2Adjacency: false });
    await eventually(async () => expect(await addresses(segmentId)).toBe(253));
    const change = await refusal(net.updateSubnet({ id: subnet!.id, segmentId: randomUUID() }));
    expect(change.message).toBe(
      "A subnet that is already associated with a segment cannot have its segment association changed.",
    );

    const { network: two } = await net.createNetwork({
      name: "two-segments",
      segments: [
        { name: "a", networkType: "vlan", physicalNetwork: "physnet-r2", segmentationId: 702 },
        { name: "b", networkType: "vlan", physicalNetwork: "physnet-r3", segmentationId: 703 },
      ],
    });
    const { network: plain } = await net.createNetwork({ name: "plain-two" });
    const { subnet: s1 } = await net.createSubnet({ networkId: plain!.id, cidr: "10.105.0.0/24" });
    await net.createSubnet({ networkId: plain!.id, cidr: "10.105.1.0/24" });
    expect(
      (await refusal(net.updateSubnet({ id: s1!.id, segmentId: plain!.segments[0]!.id }))).message,
    ).toContain("must either all be associated with segments or all not associated with any segment");
    const { subnet: onA } = await net.createSubnet({
      networkId: two!.id,
      segmentId: two!.segments[0]!.id,
      cidr: "10.106.0.0/24",
    });
    expect(onA!.segmentId).toBe(two!.segments[0]!.id);
  });

  it("a /12 on a segment: placement counts its million addresses, and ports get its lowest", async () => {
    const { network } = await net.createNetwork({
      name: "large",
      segments: [{ name: "big", networkType: "vlan", physicalNetwork: "physnet-big", segmentationId: 704 }],
    });
    const segmentId = network!.segments[0]!.id;
    const { subnet } = await net.createSubnet({ networkId: network!.id, segmentId, cidr: "10.112.0.0/12" });
    expect(subnet!.allocationPools.map((p) => [p.start, p.end])).toEqual([["10.112.0.2", "10.127.255.254"]]);
    await eventually(async () => expect(await addresses(segmentId)).toBe(2 ** 20 - 3));
    await net.reportHostPhysicalNetworks({ host: "big-host", physicalNetworks: ["physnet-big"] });
    const ips = [];
    for (let i = 0; i < 3; i++) {
      const port = (await net.createPort({ networkId: network!.id })).port!;
      ips.push((await net.bindPort({ portId: port.id, host: "big-host" })).port!.fixedIps[0]!.ipAddress);
    }
    expect(ips).toEqual(["10.112.0.2", "10.112.0.3", "10.112.0.4"]);
  });

  it("refuses to delete a subnet ports use (a router's interface too); the network's own ports let go", async () => {
    const { networkId, subnetId } = await tenantNetwork(net, "10.107.0.0/24");
    const vm = (await net.createPort({ networkId, deviceOwner: "compute:nova", deviceId: "vm" })).port!;
    const inUse = await refusal(net.deleteSubnet({ id: subnetId }));
    expect(inUse.kind).toBe("conflict");
    expect(inUse.message).toBe(
      `Unable to complete operation on subnet ${subnetId}: One or more ports have an IP allocation from this subnet.`,
    );
    await net.deletePort({ id: vm.id });
    const { router } = await net.createRouter({ name: "r", projectId: "p1" });
    await net.addRouterInterface({ routerId: router!.id, subnetId });
    expect((await refusal(net.deleteSubnet({ id: subnetId }))).kind).toBe("conflict");
    await net.removeRouterInterface({ routerId: router!.id, subnetId });
    const dhcp = (await net.createPort({ networkId, deviceOwner: "network:dhcp", deviceId: "dhcp" })).port!;
    expect(dhcp.fixedIps).toHaveLength(1);
    await net.deleteSubnet({ id: subnetId });
    expect((await net.getPort({ id: dhcp.id })).port!.fixedIps).toEqual([]);
  });

  it("subnet pools: grow but never shrink, one default, shared only while no other project uses them", async () => {
    const { pool } = await net.createSubnetPool({
      pool: {
        name: "grow",
        projectId: "p-pool",
        prefixes: ["10.120.0.0/16"],
        shared: true,
        description: "d",
      },
    });
    expect(pool).toMatchObject({ description: "d", minPrefixlen: 16, revisionNumber: 1n });
    const { pool: grown } = await net.updateSubnetPool({
      id: pool!.id,
      name: "grown",
      updatePrefixes: true,
      prefixes: ["10.120.0.0/16", "10.121.0.0/16"],
      defaultPrefixlen: 24,
      maxPrefixlen: 28,
    });
    expect(grown).toMatchObject({
      name: "grown",
      prefixes: ["10.120.0.0/16", "10.121.0.0/16"],
      defaultPrefixlen: 24,
      revisionNumber: 2n,
    });
    const shrink = await refusal(
      net.updateSubnetPool({ id: pool!.id, updatePrefixes: true, prefixes: ["10.120.0.0/16"] }),
    );
    expect(shrink.message).toBe(
      "Illegal update to prefixes: Existing prefixes must be a subset of the new prefixes.",
    );
    expect((await refusal(net.updateSubnetPool({ id: pool!.id, minPrefixlen: 30 }))).kind).toBe(
      "invalid_input",
    );
    expect((await refusal(net.updateSubnetPool({ id: pool!.id, isDefault: true }))).message).toContain(
      "A default subnetpool for this IP family has already been set",
    );
    const { network } = await asProject("p-user", () => net.createNetwork({ name: "user-net" }));
    const { subnet } = await asProject("p-user", () =>
      net.createSubnet({ networkId: network!.id, subnetpoolId: pool!.id }),
    );
    expect(subnet!.cidr).toBe("10.120.0.0/24");
    expect((await refusal(net.updateSubnetPool({ id: pool!.id, shared: false }))).kind).toBe("conflict");
    const inUse = await refusal(net.deleteSubnetPool({ id: pool!.id }));
    expect(inUse.kind).toBe("invalid_input");
    expect(inUse.message).toBe(
      `Unable to delete subnet pool: Subnet pool has existing allocations (it is in use by subnet ${subnet!.id}).`,
    );
    expect(
      (await refusal(asProject("p-user", () => net.updateSubnetPool({ id: pool!.id, name: "mine" })))).kind,
    ).toBe("forbidden");
  });
});
