// Networks, subnets and ports over RPC on the embedded default (PGlite): defaults, IPAM rules
// (fixed IPs honoured or refused, pools only, exhaustion, release), updates, filters, project
// scoping, deletion rules, quotas and events.
import { randomUUID } from "node:crypto";
import { fromBinary } from "@bufbuild/protobuf";
import {
  IpAddressChangedSchema,
  NetworkChangedSchema,
  PortChange,
  PortChangedSchema,
} from "@stratus/contracts/events/v1";
import { IpAllocation, NetworkService } from "@stratus/contracts/network/v1";
import {
  defaultRoles,
  newRequestId,
  REQUEST_ID_HEADER,
  runWithContext,
  serviceClient,
  systemContext,
  userContext,
} from "@stratus/runtime";
import { type Mesh, startMesh } from "@stratus/runtime/testing";
import type { MsgHdrs, NatsConnection } from "nats";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { eventually, type NetworkClient, refusal, tenantNetwork } from "./helpers.js";

/** Runs a call as a non-admin user of a project (the headers the api would send). */
const asProject = <T>(project: string, fn: () => Promise<T>) =>
  runWithContext(userContext({ userId: "u", projectId: project, roles: defaultRoles(false) }), fn);

describe("networks, subnets and ports", () => {
  let mesh: Mesh;
  let net: NetworkClient;
  let nc: NatsConnection;
  const events: { subject: string; data: Uint8Array; headers: MsgHdrs | undefined }[] = [];

  beforeAll(async () => {
    mesh = await startMesh({ services: ["network-adapter"] });
    net = serviceClient(NetworkService, mesh.url("network-adapter"));
    nc = await mesh.nats.connect("tools");
    const sub = nc.subscribe("stratus.>");
    void (async () => {
      for await (const m of sub) events.push({ subject: m.subject, data: m.data, headers: m.headers });
    })();
  });
  afterAll(async () => {
    await nc?.close();
    await mesh?.close();
  });

  it("a network without segments gets one tunnelled segment; a subnet gets Neutron's defaults", async () => {
    const { network } = await net.createNetwork({ name: "plain", projectId: "p1" });
    expect(network).toMatchObject({
      status: "ACTIVE",
      adminStateUp: true,
      mtu: 1450,
      routed: false,
      shared: false,
    });
    expect(network!.segments).toHaveLength(1);
    expect(network!.segments[0]).toMatchObject({ networkType: "vxlan", physicalNetwork: "" });
    expect(network!.segments[0]!.segmentationId).toBeGreaterThan(0);
    const { subnet } = await net.createSubnet({ networkId: network!.id, cidr: "10.0.0.0/24" });
    expect(subnet).toMatchObject({
      cidr: "10.0.0.0/24",
      ipVersion: 4,
      gatewayIp: "10.0.0.1",
      segmentId: "",
      projectId: "p1",
    });
    expect(subnet!.allocationPools.map((p) => [p.start, p.end])).toEqual([["10.0.0.2", "10.0.0.254"]]);
    expect((await net.getNetwork({ id: network!.id })).network!.subnetIds).toEqual([subnet!.id]);
    await eventually(async () => {
      const created = events
        .filter((e) => e.subject === "stratus.network.created")
        .map((e) => fromBinary(NetworkChangedSchema, e.data));
      expect(created.map((c) => c.networkId)).toContain(network!.id);
    });
  });

  it("refuses bad subnets: overlapping, gateway in a pool, pools outside the cidr, host bits", async () => {
    const { networkId } = await tenantNetwork(net, "10.1.0.0/24");
    expect((await refusal(net.createSubnet({ networkId, cidr: "10.1.0.128/25" }))).message).toContain(
      "overlaps",
    );
    const gw = await refusal(
      net.createSubnet({
        networkId,
        cidr: "10.1.1.0/24",
        allocationPools: [{ start: "10.1.1.1", end: "10.1.1.9" }],
      }),
    );
    expect(gw.message).toContain("gateway ip 10.1.1.1 conflicts with allocation pool");
    const outside = await refusal(
      net.createSubnet({
        networkId,
        cidr: "10.1.1.0/24",
        allocationPools: [{ start: "10.1.2.1", end: "10.1.2.9" }],
      }),
    );
    expect(outside.kind).toBe("invalid_input");
    expect((await refusal(net.createSubnet({ networkId, cidr: "10.1.1.7/24" }))).message).toContain(
      "host bits",
    );
    expect((await net.getNetwork({ id: networkId })).network!.subnetIds).toHaveLength(1);
  });

  it("fixed IPs are honoured or refused clearly; automatic picks come only from the pools", async () => {
    const { network } = await net.createNetwork({ name: "pools", projectId: "p1" });
    const { subnet } = await net.createSubnet({
      networkId: network!.id,
      cidr: "10.2.0.0/24",
      allocationPools: [{ start: "10.2.0.100", end: "10.2.0.102" }],
    });
    const fixed = await net.createPort({
      networkId: network!.id,
      projectId: "p1",
      fixedIps: [{ ipAddress: "10.2.0.50" }],
    });
    expect(fixed.port!.fixedIps).toEqual([
      expect.objectContaining({ subnetId: subnet!.id, ipAddress: "10.2.0.50" }),
    ]);
    expect(fixed.port!.ipAllocation).toBe(IpAllocation.IMMEDIATE);
    expect(fixed.port!.macAddress).toMatch(/^fa:16:3e(:[0-9a-f]{2}){3}$/);

    const taken = await refusal(
      net.createPort({ networkId: network!.id, fixedIps: [{ ipAddress: "10.2.0.50" }] }),
    );
    expect(taken.kind).toBe("conflict");
    expect(taken.message).toBe(`IP address 10.2.0.50 already allocated in subnet ${subnet!.id}`);
    expect(
      (await refusal(net.createPort({ networkId: network!.id, fixedIps: [{ ipAddress: "10.2.0.1" }] })))
        .message,
    ).toContain("is the gateway");
    expect(
      (await refusal(net.createPort({ networkId: network!.id, fixedIps: [{ ipAddress: "10.2.0.255" }] })))
        .message,
    ).toContain("broadcast");
    expect(
      (await refusal(net.createPort({ networkId: network!.id, fixedIps: [{ ipAddress: "10.9.9.9" }] }))).kind,
    ).toBe("invalid_input");

    const auto = [];
    for (let i = 0; i < 3; i++)
      auto.push((await net.createPort({ networkId: network!.id })).port!.fixedIps[0]!.ipAddress);
    expect(auto.sort()).toEqual(["10.2.0.100", "10.2.0.101", "10.2.0.102"]);
    const exhausted = await refusal(net.createPort({ networkId: network!.id }));
    expect(exhausted.kind).toBe("ip_exhausted");
    expect(exhausted.message).toBe(`No more IP addresses available on network ${network!.id}.`);
    // A refused creation leaves no port behind.
    expect((await net.listPorts({ networkId: network!.id })).ports).toHaveLength(4);

    // ip_allocation none: no address, even with room.
    const none = await net.createPort({ networkId: network!.id, ipAllocation: IpAllocation.NONE });
    expect(none.port!.fixedIps).toEqual([]);
    expect(none.port!.ipAllocation).toBe(IpAllocation.NONE);

    // Deleting a port gives its address back.
    const first = (await net.listPorts({ networkId: network!.id })).ports.find(
      (p) => p.fixedIps[0]?.ipAddress === "10.2.0.101",
    )!;
    await net.deletePort({ id: first.id });
    expect((await net.createPort({ networkId: network!.id })).port!.fixedIps[0]!.ipAddress).toBe(
      "10.2.0.101",
    );
  });

  it("automatic picks fill a network's first subnet, then the next; a MAC in use is refused", async () => {
    const { network } = await net.createNetwork({ name: "two-subnets", projectId: "p1" });
    const { subnet: first } = await net.createSubnet({
      networkId: network!.id,
      cidr: "10.12.0.0/24",
      allocationPools: [{ start: "10.12.0.10", end: "10.12.0.11" }],
    });
    const { subnet: second } = await net.createSubnet({ networkId: network!.id, cidr: "10.13.0.0/24" });
    const picks = [];
    for (let i = 0; i < 3; i++) picks.push((await net.createPort({ networkId: network!.id })).port!.fixedIps);
    expect(picks).toEqual([
      [expect.objectContaining({ subnetId: first!.id, ipAddress: "10.12.0.10" })],
      [expect.objectContaining({ subnetId: first!.id, ipAddress: "10.12.0.11" })],
      [expect.objectContaining({ subnetId: second!.id, ipAddress: "10.13.0.2" })],
    ]);
    const { port } = await net.createPort({ networkId: network!.id, macAddress: "FA:16:3E:00:12:34" });
    expect(port!.macAddress).toBe("fa:16:3e:00:12:34");
    const dup = await refusal(net.createPort({ networkId: network!.id, macAddress: "fa:16:3e:00:12:34" }));
    expect(dup.kind).toBe("conflict");
    expect(dup.message).toContain("The mac address fa:16:3e:00:12:34 is in use");
    // The refused port took no address: the next one gets the one after.
    expect((await net.createPort({ networkId: network!.id })).port!.fixedIps[0]!.ipAddress).toBe("10.13.0.4");
    expect((await net.listPorts({ networkId: network!.id })).ports).toHaveLength(5);
  });

  it("each call's events carry that call's request id, also when calls run concurrently", async () => {
    const { networkId } = await tenantNetwork(net, "10.14.0.0/24");
    const calls = Array.from({ length: 12 }, () => newRequestId());
    const ports = await Promise.all(
      calls.map((requestId) =>
        runWithContext(systemContext(requestId), () => net.createPort({ networkId })).then((r) => ({
          requestId,
          port: r.port!,
        })),
      ),
    );
    await eventually(async () => {
      for (const { requestId, port } of ports) {
        const created = events.filter(
          (e) =>
            e.subject === "stratus.port.created" && fromBinary(PortChangedSchema, e.data).portId === port.id,
        );
        const allocated = events.filter(
          (e) =>
            e.subject === "stratus.ip.allocated" &&
            fromBinary(IpAddressChangedSchema, e.data).portId === port.id,
        );
        expect([...created, ...allocated].map((e) => e.headers?.get(REQUEST_ID_HEADER))).toEqual([
          requestId,
          requestId,
        ]);
      }
    });
  });

  it("UpdatePort changes name, device and (unbound) addresses; an empty list releases them", async () => {
    const { networkId, subnetId } = await tenantNetwork(net, "10.3.0.0/28");
    const { port } = await net.createPort({ networkId, projectId: "p1" });
    const moved = await net.updatePort({
      id: port!.id,
      name: "renamed",
      deviceId: "dev-1",
      updateFixedIps: true,
      fixedIps: [{ subnetId, ipAddress: "10.3.0.9" }],
    });
    expect(moved.port).toMatchObject({ name: "renamed", deviceId: "dev-1" });
    expect(moved.port!.fixedIps.map((f) => f.ipAddress)).toEqual(["10.3.0.9"]);
    const cleared = await net.updatePort({ id: port!.id, updateFixedIps: true, fixedIps: [] });
    expect(cleared.port!.fixedIps).toEqual([]);
    // The old addresses are free again.
    await net.createPort({ networkId, fixedIps: [{ ipAddress: "10.3.0.9" }] });
    await net.createPort({ networkId, fixedIps: [{ ipAddress: "10.3.0.2" }] });

    await net.bindPort({ portId: port!.id, host: "any-host" });
    const bound = await refusal(
      net.updatePort({ id: port!.id, updateFixedIps: true, fixedIps: [{ subnetId }] }),
    );
    expect(bound.message).toContain("unbind it before changing its addresses");
  });

  it("lists ports by network, device and project", async () => {
    const { networkId } = await tenantNetwork(net, "10.4.0.0/24", "p-list");
    const a = (await net.createPort({ networkId, projectId: "p-list", deviceId: "vm-a" })).port!;
    const b = (await net.createPort({ networkId, projectId: "p-list", deviceId: "vm-b" })).port!;
    expect((await net.listPorts({ networkId })).ports.map((p) => p.id)).toEqual([a.id, b.id]);
    expect((await net.listPorts({ deviceId: "vm-b" })).ports.map((p) => p.id)).toEqual([b.id]);
    expect((await net.listPorts({ projectId: "p-list", deviceId: "vm-a" })).ports.map((p) => p.id)).toEqual([
      a.id,
    ]);
    expect((await net.listPorts({ ids: [a.id, randomUUID()] })).ports.map((p) => p.id)).toEqual([a.id]);
  });

  it("scopes by project: own and shared networks are visible, other projects' are not; admin sees all", async () => {
    const mine = await tenantNetwork(net, "10.5.0.0/24", "p-a");
    const { network: shared } = await net.createNetwork({ name: "shared", projectId: "admin", shared: true });
    await net.createSubnet({ networkId: shared!.id, cidr: "10.6.0.0/24" });
    const port = (await net.createPort({ networkId: mine.networkId, projectId: "p-a" })).port!;

    const seenByB = await asProject("p-b", () => net.listNetworks({}));
    expect(seenByB.networks.map((n) => n.id)).toContain(shared!.id);
    expect(seenByB.networks.map((n) => n.id)).not.toContain(mine.networkId);
    expect((await refusal(asProject("p-b", () => net.getNetwork({ id: mine.networkId })))).kind).toBe(
      "not_found",
    );
    expect((await refusal(asProject("p-b", () => net.getPort({ id: port.id })))).kind).toBe("not_found");
    expect((await asProject("p-b", () => net.listPorts({}))).ports).toEqual([]);
    expect((await refusal(asProject("p-b", () => net.createPort({ networkId: mine.networkId })))).kind).toBe(
      "not_found",
    );
    expect(
      (await refusal(asProject("p-b", () => net.createNetwork({ name: "x", projectId: "p-a" })))).kind,
    ).toBe("forbidden");
    // p-b may use the shared network; its port is its own.
    const onShared = (await asProject("p-b", () => net.createPort({ networkId: shared!.id }))).port!;
    expect(onShared.projectId).toBe("p-b");
    expect((await asProject("p-a", () => net.getPort({ id: port.id }))).port!.id).toBe(port.id);
    const admin = await runWithContext(
      userContext({ userId: "admin", projectId: "admin", roles: defaultRoles(true) }),
      () => net.listNetworks({}),
    );
    expect(admin.networks.map((n) => n.id)).toEqual(expect.arrayContaining([mine.networkId, shared!.id]));
  });

  it("a network with ports cannot be deleted; without them it goes with its subnets", async () => {
    const { networkId, subnetId } = await tenantNetwork(net, "10.7.0.0/24");
    const { port } = await net.createPort({ networkId });
    const inUse = await refusal(net.deleteNetwork({ id: networkId }));
    expect(inUse.kind).toBe("conflict");
    expect(inUse.message).toContain("ports still in use");
    const subnetInUse = await refusal(net.deleteSubnet({ id: subnetId }));
    expect(subnetInUse.message).toContain("One or more ports have an IP allocation from this subnet");
    await net.deletePort({ id: port!.id });
    await net.deleteNetwork({ id: networkId });
    expect((await refusal(net.getSubnet({ id: subnetId }))).kind).toBe("not_found");
    expect((await refusal(net.getNetwork({ id: "not-a-uuid" }))).kind).toBe("not_found");
  });

  it("routers: the gateway must be external; interfaces hold the subnet's gateway address; in use while they exist", async () => {
    const { networkId, subnetId } = await tenantNetwork(net, "10.8.0.0/24");
    const notExternal = await refusal(net.createRouter({ name: "r", externalNetworkId: networkId }));
    expect(notExternal.message).toBe(`Bad router request: Network ${networkId} is not an external network.`);
    const { router } = await net.createRouter({ name: "r", projectId: "p1" });
    const withIface = await net.addRouterInterface({ routerId: router!.id, subnetId });
    const portId = withIface.router!.interfaces[0]!.portId;
    expect((await net.getPort({ id: portId })).port!.fixedIps[0]!.ipAddress).toBe("10.8.0.1");
    expect((await refusal(net.addRouterInterface({ routerId: router!.id, subnetId }))).message).toContain(
      "Router already has a port on subnet",
    );
    expect((await refusal(net.deletePort({ id: portId }))).message).toContain("cannot be deleted directly");
    // Neutron's RouterInUse: a router with interfaces stays; removing the interface deletes its port.
    const inUse = await refusal(net.deleteRouter({ id: router!.id }));
    expect(inUse.kind).toBe("conflict");
    expect(inUse.message).toBe(`Router ${router!.id} still has ports`);
    await net.removeRouterInterface({ routerId: router!.id, subnetId });
    await net.deleteRouter({ id: router!.id });
    expect((await refusal(net.getPort({ id: portId }))).kind).toBe("not_found");
  });

  it("segments: admin-only, validated, in use while a subnet is bound; subnets are all on segments or none", async () => {
    const { network } = await net.createNetwork({
      name: "multi",
      segments: [
        { name: "s1", networkType: "vlan", physicalNetwork: "physnet-x", segmentationId: 300 },
        { name: "s2", networkType: "vlan", physicalNetwork: "physnet-y", segmentationId: 300 },
      ],
    });
    const [s1, s2] = network!.segments;
    expect(network!.routed).toBe(true);
    // The same VLAN on the same physnet twice is refused.
    const dup = await refusal(
      net.createSegment({
        segment: {
          networkId: network!.id,
          networkType: "vlan",
          physicalNetwork: "physnet-x",
          segmentationId: 300,
        },
      }),
    );
    expect(dup.kind).toBe("conflict");
    expect(
      (
        await refusal(
          net.createSegment({
            segment: { networkId: network!.id, networkType: "vlan", physicalNetwork: "p" },
          }),
        )
      ).message,
    ).toContain("outside 1..4094");
    expect(
      (
        await refusal(
          asProject("p1", () =>
            net.createSegment({ segment: { networkId: network!.id, networkType: "vxlan" } }),
          ),
        )
      ).kind,
    ).toBe("forbidden");
    // Several segments: a subnet must name one, and it must be the network's.
    expect(
      (await refusal(net.createSubnet({ networkId: network!.id, cidr: "10.30.0.0/24" }))).message,
    ).toContain("needs a segment_id");
    const { network: other } = await net.createNetwork({ name: "other" });
    expect(
      (await refusal(net.createSubnet({ networkId: other!.id, segmentId: s1!.id, cidr: "10.30.0.0/24" })))
        .message,
    ).toContain("does not belong to network");
    const { subnet } = await net.createSubnet({
      networkId: network!.id,
      segmentId: s1!.id,
      cidr: "10.30.0.0/24",
    });
    const inUse = await refusal(net.deleteSegment({ id: s1!.id }));
    expect(inUse.message).toContain("is still associated with subnet(s)");
    await net.deleteSegment({ id: s2!.id });
    expect((await net.listSegments({ networkId: network!.id })).segments.map((s) => s.id)).toEqual([s1!.id]);
    await net.deleteSubnet({ id: subnet!.id });
    await net.deleteSegment({ id: s1!.id });
  });

  it("subnet pools: one default per family, prefix lengths enforced, blocks handed out in order", async () => {
    const { pool } = await net.createSubnetPool({
      pool: {
        name: "tenant-pool",
        prefixes: ["172.16.0.0/22"],
        defaultPrefixlen: 24,
        minPrefixlen: 23,
        maxPrefixlen: 26,
      },
    });
    expect(pool).toMatchObject({ defaultPrefixlen: 24, minPrefixlen: 23, maxPrefixlen: 26, ipVersion: 4 });
    const { network } = await net.createNetwork({ name: "from-pool", projectId: "p1" });
    const cidrs = [];
    for (const prefixlen of [0, 26, 0]) {
      cidrs.push(
        (await net.createSubnet({ networkId: network!.id, subnetpoolId: pool!.id, prefixlen })).subnet!.cidr,
      );
    }
    expect(cidrs).toEqual(["172.16.0.0/24", "172.16.1.0/26", "172.16.2.0/24"]);
    expect(
      (await refusal(net.createSubnet({ networkId: network!.id, subnetpoolId: pool!.id, prefixlen: 28 })))
        .message,
    ).toContain("outside the pool's range");
    const full = await refusal(
      net.createSubnet({ networkId: network!.id, subnetpoolId: pool!.id, prefixlen: 23 }),
    );
    expect(full.message).toBe(
      "Failed to allocate subnet: Insufficient prefix space to allocate subnet size /23.",
    );
    expect((await refusal(net.deleteSubnetPool({ id: pool!.id }))).message).toContain("is in use by subnet");

    await net.createSubnetPool({ pool: { name: "d1", prefixes: ["192.168.0.0/16"], isDefault: true } });
    const second = await refusal(
      net.createSubnetPool({ pool: { name: "d2", prefixes: ["192.169.0.0/16"], isDefault: true } }),
    );
    expect(second.message).toContain("A default subnetpool for this IP family has already been set");
    expect((await net.listSubnetPools({ isDefault: true })).pools.map((p) => p.name)).toEqual(["d1"]);
  });

  it("quotas are Neutron's defaults, with what the project uses", async () => {
    await tenantNetwork(net, "10.10.0.0/24", "p-quota");
    const q = await net.getQuotas({ projectId: "p-quota" });
    expect(q).toMatchObject({
      floatingIps: 50,
      securityGroups: 10,
      securityGroupRules: 100,
      networks: 100,
      subnets: 100,
      ports: 500,
      routers: 10,
      networksUsed: 1,
      subnetsUsed: 1,
      portsUsed: 0,
    });
  });

  it("publishes port created / deleted events with the addresses", async () => {
    const { networkId } = await tenantNetwork(net, "10.11.0.0/24");
    const { port } = await net.createPort({ networkId, deviceId: "vm-ev" });
    await net.deletePort({ id: port!.id });
    await eventually(async () => {
      const mine = events
        .filter((e) => e.subject.startsWith("stratus.port."))
        .map((e) => ({ subject: e.subject, ev: fromBinary(PortChangedSchema, e.data) }))
        .filter((e) => e.ev.portId === port!.id);
      expect(mine.map((e) => [e.subject, e.ev.change, e.ev.ipAddresses, e.ev.deviceId])).toEqual([
        ["stratus.port.created", PortChange.CREATED, ["10.11.0.2"], "vm-ev"],
        ["stratus.port.deleted", PortChange.DELETED, ["10.11.0.2"], "vm-ev"],
      ]);
    });
  });
});
