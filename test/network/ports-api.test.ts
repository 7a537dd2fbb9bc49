// Ports through the Networking API's operations, over RPC on the embedded default: ip_allocation
// as Neutron chooses it (fixed_ips [] is none, a host at creation allocates from its segment),
// updates of plain attributes (revisions), of fixed_ips read as Neutron reads them, of the binding
// (an admin's binding:host_id binds as BindPort does, with Neutron's conflicts), of the MAC
// (admin, unbound only), and deletion of a port a server uses (refused through the API) or of a
// router's port whose router is gone (allowed).
import { IpAllocation, NetworkService } from "@stratus/contracts/network/v1";
import { serviceClient } from "@stratus/runtime";
import { type Mesh, startMesh } from "@stratus/runtime/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { asProject, type NetworkClient, refusal, tenantNetwork } from "./helpers.js";

describe("ports through the Networking API's operations", () => {
  let mesh: Mesh;
  let net: NetworkClient;
  let routed = { networkId: "", segA: "", segB: "", subnetA: "" };

  beforeAll(async () => {
    mesh = await startMesh({ services: ["network-adapter"] });
    net = serviceClient(NetworkService, mesh.url("network-adapter"));
    for (const [host, physnets] of [
      ["rack1-h", ["physnet-p1"]],
      ["rack2-h", ["physnet-p2"]],
      ["nowhere-h", []],
    ] as const) {
      await net.reportHostPhysicalNetworks({ host, physicalNetworks: [...physnets] });
    }
    const { network } = await net.createNetwork({
      name: "routed",
      projectId: "p1",
      shared: true,
      segments: [
        { name: "a", networkType: "vlan", physicalNetwork: "physnet-p1", segmentationId: 801 },
        { name: "b", networkType: "vlan", physicalNetwork: "physnet-p2", segmentationId: 802 },
      ],
    });
    const [segA, segB] = network!.segments.map((s) => s.id);
    const { subnet } = await net.createSubnet({
      networkId: network!.id,
      segmentId: segA,
      cidr: "10.130.1.0/24",
    });
    await net.createSubnet({ networkId: network!.id, segmentId: segB, cidr: "10.130.2.0/24" });
    routed = { networkId: network!.id, segA: segA!, segB: segB!, subnetA: subnet!.id };
  });
  afterAll(async () => {
    await mesh?.close();
  });

  it("chooses ip_allocation as Neutron: none for fixed_ips [], deferred on a routed network, immediate with a host", async () => {
    const none = (await net.createPort({ networkId: routed.networkId, noFixedIps: true })).port!;
    expect(none).toMatchObject({ ipAllocation: IpAllocation.NONE, fixedIps: [] });
    const deferred = (await net.createPort({ networkId: routed.networkId, description: "later" })).port!;
    expect(deferred).toMatchObject({
      ipAllocation: IpAllocation.DEFERRED,
      fixedIps: [],
      description: "later",
    });
    const withHost = (await net.createPort({ networkId: routed.networkId, bindingHostId: "rack2-h" })).port!;
    expect(withHost).toMatchObject({ ipAllocation: IpAllocation.IMMEDIATE, bindingHostId: "rack2-h" });
    expect(withHost.fixedIps[0]!.ipAddress).toMatch(/^10\.130\.2\./);
    const unreachable = await refusal(
      net.createPort({ networkId: routed.networkId, bindingHostId: "nowhere-h" }),
    );
    expect(unreachable.kind).toBe("conflict");
    expect(
      (
        await refusal(
          asProject("p1", () => net.createPort({ networkId: routed.networkId, bindingHostId: "rack2-h" })),
        )
      ).kind,
    ).toBe("forbidden");
    const down = (await net.createPort({ networkId: routed.networkId, adminStateUp: false })).port!;
    expect(down.adminStateUp).toBe(false);
  });

  it("updates plain attributes with a revision each; a router's ports keep their owner", async () => {
    const { networkId } = await tenantNetwork(net, "10.131.0.0/24");
    const port = (await net.createPort({ networkId })).port!;
    expect(port.revisionNumber).toBe(1n);
    const { port: updated } = await net.updatePort({
      id: port.id,
      name: "eth0",
      description: "primary",
      adminStateUp: false,
      deviceId: "vm-9",
      deviceOwner: "compute:nova",
    });
    expect(updated).toMatchObject({
      name: "eth0",
      description: "primary",
      adminStateUp: false,
      deviceId: "vm-9",
      deviceOwner: "compute:nova",
      revisionNumber: 2n,
    });
    expect(
      (await refusal(net.updatePort({ id: port.id, deviceOwner: "network:router_interface" }))).kind,
    ).toBe("conflict");
  });

  it("reads a new fixed_ips list as Neutron: named and held is kept, a subnet alone keeps its address, the rest moves", async () => {
    const { network } = await net.createNetwork({ name: "two-subnets", projectId: "p1" });
    const { subnet: s1 } = await net.createSubnet({ networkId: network!.id, cidr: "10.132.1.0/24" });
    const { subnet: s2 } = await net.createSubnet({ networkId: network!.id, cidr: "10.132.2.0/24" });
    const port = (await net.createPort({ networkId: network!.id })).port!;
    const [first] = port.fixedIps;
    expect(first).toMatchObject({ subnetId: s1!.id, ipAddress: "10.132.1.2" });
    const ips = async (fixedIps: { subnetId?: string; ipAddress?: string }[]) =>
      (await net.updatePort({ id: port.id, updateFixedIps: true, fixedIps })).port!.fixedIps.map(
        (f) => f.ipAddress,
      );
    expect(await ips([{ subnetId: s1!.id }])).toEqual(["10.132.1.2"]);
    expect(await ips([{ subnetId: s1!.id }, { subnetId: s2!.id }])).toEqual(["10.132.1.2", "10.132.2.2"]);
    expect(await ips([{ ipAddress: "10.132.2.2" }, { ipAddress: "10.132.1.9" }])).toEqual([
      "10.132.1.9",
      "10.132.2.2",
    ]);
    // 10.132.1.2 was released: the next port gets it.
    expect((await net.createPort({ networkId: network!.id })).port!.fixedIps[0]!.ipAddress).toBe(
      "10.132.1.2",
    );
    expect(await ips([])).toEqual([]);
    const taken = await refusal(
      net.updatePort({ id: port.id, updateFixedIps: true, fixedIps: [{ ipAddress: "10.132.1.2" }] }),
    );
    expect(taken.message).toBe(`IP address 10.132.1.2 already allocated in subnet ${s1!.id}`);
    // On a routed network, addresses of two segments are refused.
    const deferred = (await net.createPort({ networkId: routed.networkId })).port!;
    const twoSegments = await refusal(
      net.updatePort({
        id: deferred.id,
        updateFixedIps: true,
        fixedIps: [{ ipAddress: "10.130.1.50" }, { ipAddress: "10.130.2.50" }],
      }),
    );
    expect(twoSegments.message).toBe("Cannot allocate addresses from different segments.");
  });

  it("binds on an admin's binding:host_id as BindPort does, with Neutron's conflicts", async () => {
    const port = (await net.createPort({ networkId: routed.networkId })).port!;
    const notConnected = await refusal(net.updatePort({ id: port.id, bindingHostId: "nowhere-h" }));
    expect(notConnected.kind).toBe("conflict");
    expect(notConnected.message).toBe(
      `Host nowhere-h is not connected to any segments on routed provider network '${routed.networkId}'.  It should be connected to one.`,
    );
    const bound = (
      await net.updatePort({
        id: port.id,
        bindingHostId: "rack1-h",
        updateBindingProfile: true,
        bindingProfile: { pci_slot: "0000:00:1f.0" },
      })
    ).port!;
    expect(bound).toMatchObject({
      bindingHostId: "rack1-h",
      bindingVifType: "ovs",
      bindingProfile: { pci_slot: "0000:00:1f.0" },
    });
    expect(bound.fixedIps[0]!.ipAddress).toMatch(/^10\.130\.1\./);
    const unbound = (await net.updatePort({ id: port.id, bindingHostId: "" })).port!;
    expect(unbound).toMatchObject({ bindingHostId: "", bindingVifType: "unbound", fixedIps: [] });

    // An address of segment a does not work on a host of segment b.
    const fixed = (
      await net.createPort({ networkId: routed.networkId, fixedIps: [{ ipAddress: "10.130.1.77" }] })
    ).port!;
    const incompatible = await refusal(net.updatePort({ id: fixed.id, bindingHostId: "rack2-h" }));
    expect(incompatible.kind).toBe("conflict");
    expect(incompatible.message).toBe(
      `Host rack2-h is not connected to a segment where the existing fixed_ips on port ${fixed.id} will function given the routed network topology.`,
    );
    expect(
      (await net.updatePort({ id: fixed.id, bindingHostId: "rack1-h" })).port!.fixedIps[0]!.ipAddress,
    ).toBe("10.130.1.77");
    // Not for a project's user.
    const mine = (await asProject("p1", () => net.createPort({ networkId: routed.networkId }))).port!;
    for (const req of [
      { bindingHostId: "rack1-h" },
      { updateBindingProfile: true, bindingProfile: { a: "b" } },
    ]) {
      expect((await refusal(asProject("p1", () => net.updatePort({ id: mine.id, ...req })))).kind).toBe(
        "forbidden",
      );
    }
  });

  it("changes the MAC of an unbound port for an admin, never to one in use", async () => {
    const { networkId } = await tenantNetwork(net, "10.133.0.0/24");
    const a = (await net.createPort({ networkId })).port!;
    const b = (await net.createPort({ networkId })).port!;
    expect((await net.updatePort({ id: a.id, macAddress: "FA:16:3E:12:34:56" })).port!.macAddress).toBe(
      "fa:16:3e:12:34:56",
    );
    const inUse = await refusal(net.updatePort({ id: b.id, macAddress: "fa:16:3e:12:34:56" }));
    expect(inUse.message).toBe(
      `Unable to complete operation for network ${networkId}. The mac address fa:16:3e:12:34:56 is in use.`,
    );
    expect((await refusal(net.updatePort({ id: b.id, macAddress: "zz:16:3e:12:34:56" }))).kind).toBe(
      "invalid_input",
    );
    await net.bindPort({ portId: b.id, host: "any-host" });
    const bound = await refusal(net.updatePort({ id: b.id, macAddress: "fa:16:3e:00:00:01" }));
    expect(bound.kind).toBe("conflict");
    expect(bound.message).toContain("port is already bound");
    const own = (await asProject("p1", () => net.createPort({ networkId: routed.networkId }))).port!;
    expect(
      (await refusal(asProject("p1", () => net.updatePort({ id: own.id, macAddress: "fa:16:3e:00:00:02" }))))
        .kind,
    ).toBe("forbidden");
  });

  it("refuses to delete through the API a port a server uses; the conductor's own delete goes through", async () => {
    const { networkId } = await tenantNetwork(net, "10.134.0.0/24");
    const attached = (await net.createPort({ networkId, deviceId: "server-7", deviceOwner: "compute:nova" }))
      .port!;
    const err = await refusal(net.deletePort({ id: attached.id, refuseIfAttached: true }));
    expect(err.kind).toBe("conflict");
    expect(err.message).toBe(
      `Port ${attached.id} cannot be deleted: it is attached to server server-7; detach it from the server first.`,
    );
    const free = (await net.createPort({ networkId })).port!;
    await net.deletePort({ id: free.id, refuseIfAttached: true });
    await net.deletePort({ id: attached.id });
    expect((await refusal(net.getPort({ id: attached.id }))).kind).toBe("not_found");
    // A router's port whose router does not exist (any more) may go, as in Neutron.
    const orphan = (
      await net.createPort({ networkId, deviceId: "gone-router", deviceOwner: "network:router_interface" })
    ).port!;
    await net.deletePort({ id: orphan.id, refuseIfAttached: true });
  });
});
