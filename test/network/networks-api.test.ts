import {
  NetworkChangedSchema,
  SegmentChangedSchema,
  SubnetChangedSchema,
} from "@stratus/contracts/events/v1";
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

describe("networks and segments through the Networking API's operations", () => {
  let adapter: AdapterUnderTest;
  let net: NetworkClient;
  const events = () => adapter.events;

  beforeAll(async () => {
    adapter = await startAdapter({ events: "stratus.>" });
    net = adapter.net;
  });
  afterAll(async () => {
    await adapter?.close();
  });

  it("keeps standard attributes: description, timestamps, a revision bumped by every change", async () => {
    const { network } = await net.createNetwork({
      name: "attrs",
      projectId: "p1",
      description: "first",
      adminStateUp: false,
      mtu: 1400,
    });
    expect(network).toMatchObject({
      description: "first",
      adminStateUp: false,
      mtu: 1400,
      revisionNumber: 1n,
    });
    expect(network!.createdAt).toBeDefined();
    const { network: renamed } = await net.updateNetwork({
      id: network!.id,
      name: "attrs-2",
      description: "second",
    });
    expect(renamed).toMatchObject({
      name: "attrs-2",
      description: "second",
      revisionNumber: 2n,
      adminStateUp: false,
    });
    const { network: up } = await net.updateNetwork({ id: network!.id, adminStateUp: true, mtu: 9000 });
    expect(up).toMatchObject({ adminStateUp: true, mtu: 9000, revisionNumber: 3n });
    expect((await refusal(net.updateNetwork({ id: network!.id, mtu: 9001 }))).kind).toBe("invalid_input");
    await eventually(async () => {
      const updated = published(adapter, "stratus.network.updated", NetworkChangedSchema).map(
        (m) => m.networkId,
      );
      expect(updated.filter((id) => id === network!.id)).toHaveLength(2);
    });
  });

  it("makes multi-provider segments with Neutron's ranges and refuses an id in use", async () => {
    const dup = await refusal(
      net.createNetwork({
        name: "dup",
        segments: [
          { networkType: "vlan", physicalNetwork: "physnet-d", segmentationId: 10 },
          { networkType: "vlan", physicalNetwork: "physnet-d", segmentationId: 10 },
        ],
      }),
    );
    expect(dup.message).toBe("Invalid input for operation: Duplicate segment entry in request.");
    const outOfRange = [
      { networkType: "vxlan", segmentationId: 16_777_216 },
      { networkType: "geneve", segmentationId: -1 },
      { networkType: "vlan", physicalNetwork: "physnet-d", segmentationId: 4095 },
      { networkType: "flat", physicalNetwork: "physnet-d", segmentationId: 5 },
      { networkType: "vxlan", physicalNetwork: "physnet-d" },
      { networkType: "gre" },
    ];
    for (const segment of outOfRange) {
      expect((await refusal(net.createNetwork({ name: "bad", segments: [segment] }))).kind).toBe(
        "invalid_input",
      );
    }
    const { network } = await net.createNetwork({
      name: "multi",
      segments: [
        { name: "v", networkType: "vlan", physicalNetwork: "physnet-m", segmentationId: 4094 },
        { name: "x", networkType: "vxlan", segmentationId: 16_777_215 },
        { name: "f", networkType: "flat", physicalNetwork: "physnet-flat" },
      ],
    });
    expect(network!.segments.map((s) => [s.name, s.segmentationId])).toEqual([
      ["v", 4094],
      ["x", 16_777_215],
      ["f", 0],
    ]);
    const inUse = [
      [
        { networkType: "vlan", physicalNetwork: "physnet-m", segmentationId: 4094 },
        "The VLAN 4094 on physical network physnet-m is in use.",
      ],
      [
        { networkType: "vxlan", segmentationId: 16_777_215 },
        "Unable to create the network. The tunnel ID 16777215 is in use.",
      ],
      [
        { networkType: "flat", physicalNetwork: "physnet-flat" },
        "Unable to create the flat network. Physical network physnet-flat is in use.",
      ],
    ] as const;
    for (const [segment, message] of inUse) {
      const err = await refusal(net.createSegment({ segment: { networkId: network!.id, ...segment } }));
      expect(err.kind).toBe("conflict");
      expect(err.message).toContain(message);
    }
    // The same VLAN on another physical network, and tunnels drawn automatically, are fine.
    await net.createSegment({
      segment: {
        networkId: network!.id,
        networkType: "vlan",
        physicalNetwork: "physnet-n",
        segmentationId: 4094,
      },
    });
    const tunnels = await Promise.all(
      [1, 2, 3].map(
        async (i) => (await net.createNetwork({ name: `t${i}` })).network!.segments[0]!.segmentationId,
      ),
    );
    expect(new Set(tunnels).size).toBe(3);
  });

  it("keeps one default external network, and an external network with gateways external", async () => {
    const { network: first } = await net.createNetwork({
      name: "ext-1",
      routerExternal: true,
      isDefault: true,
    });
    const second = await refusal(net.createNetwork({ name: "ext-2", routerExternal: true, isDefault: true }));
    expect(second.kind).toBe("conflict");
    expect(second.message).toBe(`A default external network already exists: ${first!.id}.`);
    const { network: other } = await net.createNetwork({ name: "ext-3", routerExternal: true });
    expect((await refusal(net.updateNetwork({ id: other!.id, isDefault: true }))).message).toBe(
      `A default external network already exists: ${first!.id}.`,
    );
    expect((await refusal(net.createNetwork({ name: "x", isDefault: true }))).kind).toBe("invalid_input");

    await net.createSubnet({ networkId: first!.id, cidr: "203.0.113.0/24" });
    const { router } = await net.createRouter({ name: "gw", externalNetworkId: first!.id });
    const stillUsed = await refusal(net.updateNetwork({ id: first!.id, routerExternal: false }));
    expect(stillUsed.kind).toBe("conflict");
    expect(stillUsed.message).toBe(
      `External network ${first!.id} cannot be updated to be made non-external, since it has existing gateway ports.`,
    );
    await net.updateRouter({ id: router!.id, updateExternalGateway: true, externalNetworkId: "" });
    // No longer external: no longer the default either, and another may be.
    const { network: internal } = await net.updateNetwork({ id: first!.id, routerExternal: false });
    expect(internal).toMatchObject({ routerExternal: false, isDefault: false });
    expect((await net.updateNetwork({ id: other!.id, isDefault: true })).network!.isDefault).toBe(true);
  });

  it("does not unshare a network other projects use; only an admin shares", async () => {
    const { network } = await net.createNetwork({ name: "shared", projectId: "p-owner", shared: true });
    await net.createSubnet({ networkId: network!.id, cidr: "10.95.0.0/24" });
    const theirs = (await asProject("p-guest", () => net.createPort({ networkId: network!.id }))).port!;
    const err = await refusal(net.updateNetwork({ id: network!.id, shared: false }));
    expect(err.kind).toBe("conflict");
    expect(err.message).toBe(
      `Unable to reconfigure sharing settings for network ${network!.id}. Multiple projects are using it.`,
    );
    expect(
      (await refusal(asProject("p-owner", () => net.updateNetwork({ id: network!.id, shared: false })))).kind,
    ).toBe("forbidden");
    await net.deletePort({ id: theirs.id });
    expect((await net.updateNetwork({ id: network!.id, shared: false })).network!.shared).toBe(false);
  });

  it("deletes a network with its own ports, subnets and segments; refuses while other ports use it", async () => {
    const { networkId, subnetId } = await tenantNetwork(net, "10.96.0.0/24");
    const dhcp = (await net.createPort({ networkId, deviceOwner: "network:dhcp", deviceId: "dhcp-1" })).port!;
    const vm = (await net.createPort({ networkId, deviceOwner: "compute:nova", deviceId: "vm-1" })).port!;
    const err = await refusal(net.deleteNetwork({ id: networkId }));
    expect(err.message).toBe(
      `Unable to complete operation on network ${networkId}. There are one or more ports still in use on the network, id for these ports is: ${vm.id}.`,
    );
    await net.deletePort({ id: vm.id });
    const segmentId = (await net.getNetwork({ id: networkId })).network!.segments[0]!.id;
    await net.deleteNetwork({ id: networkId });
    expect((await refusal(net.getPort({ id: dhcp.id }))).kind).toBe("not_found");
    await eventually(async () => {
      const seen = events().map((e) => e.subject);
      expect(seen).toContain("stratus.network.deleted");
      const subnets = published(adapter, "stratus.subnet.deleted", SubnetChangedSchema);
      expect(subnets).toContainEqual(expect.objectContaining({ subnetId, networkId, deleted: true }));
      const segments = published(adapter, "stratus.segment.deleted", SegmentChangedSchema).map(
        (m) => m.segmentId,
      );
      expect(segments).toContain(segmentId);
    });
  });

  it("updates a segment's name and description only; keeps one with subnets or bound ports", async () => {
    const { network } = await net.createNetwork({
      name: "segs",
      segments: [
        { name: "s1", networkType: "vlan", physicalNetwork: "physnet-s1", segmentationId: 501 },
        { name: "s2", networkType: "vlan", physicalNetwork: "physnet-s2", segmentationId: 502 },
      ],
    });
    const [s1, s2] = network!.segments;
    const { segment } = await net.updateSegment({ id: s1!.id, name: "rack-1", description: "first rack" });
    expect(segment).toMatchObject({
      name: "rack-1",
      description: "first rack",
      revisionNumber: 2n,
      segmentationId: 501,
    });
    expect((await refusal(asProject("p1", () => net.updateSegment({ id: s1!.id, name: "x" })))).kind).toBe(
      "forbidden",
    );
    expect((await refusal(net.updateSegment({ id: "nope", name: "x" }))).kind).toBe("not_found");

    const { subnet } = await net.createSubnet({
      networkId: network!.id,
      segmentId: s1!.id,
      cidr: "10.97.0.0/24",
    });
    const withSubnet = await refusal(net.deleteSegment({ id: s1!.id }));
    expect(withSubnet.message).toBe(
      `Segment '${s1!.id}' cannot be deleted: The segment is still associated with subnet(s) ${subnet!.id}.`,
    );
    await net.reportHostPhysicalNetworks({ host: "seg-host", physicalNetworks: ["physnet-s1"] });
    const port = (await net.createPort({ networkId: network!.id })).port!;
    await net.bindPort({ portId: port.id, host: "seg-host" });
    await net.deleteSegment({ id: s2!.id });
    await net.unbindPort({ portId: port.id, clearDevice: true });
    await net.deletePort({ id: port.id });
    await net.deleteSubnet({ id: subnet!.id });
    // As in Neutron, a network's last segment may go on its own.
    await net.deleteSegment({ id: s1!.id });
    expect((await net.getNetwork({ id: network!.id })).network!.segments).toEqual([]);
    await eventually(async () => {
      const updated = published(adapter, "stratus.segment.updated", SegmentChangedSchema).map(
        (m) => m.segmentId,
      );
      expect(updated).toContain(s1!.id);
    });
  });

  it("refuses to delete a segment ports are bound on", async () => {
    const { network } = await net.createNetwork({
      name: "bound-seg",
      segments: [{ name: "only", networkType: "vlan", physicalNetwork: "physnet-b", segmentationId: 600 }],
    });
    const segmentId = network!.segments[0]!.id;
    await net.createSubnet({ networkId: network!.id, cidr: "10.98.0.0/24" });
    await net.reportHostPhysicalNetworks({ host: "b-host", physicalNetworks: ["physnet-b"] });
    const port = (await net.createPort({ networkId: network!.id })).port!;
    await net.bindPort({ portId: port.id, host: "b-host" });
    const err = await refusal(net.deleteSegment({ id: segmentId }));
    expect(err.kind).toBe("conflict");
    expect(err.message).toBe(
      `Segment '${segmentId}' cannot be deleted: The segment is still bound with 1 port(s).`,
    );
  });
});
