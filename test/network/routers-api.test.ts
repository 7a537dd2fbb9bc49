// Routers through the Networking API's operations, over RPC on the embedded default: the external
// gateway set with chosen addresses (admin), changed, moved to another network and cleared (its
// addresses free again); interfaces added by subnet or by port, refused when they clash, and
// removed by subnet or port (NotFound when there is none); the events of every change.
import { fromBinary } from "@bufbuild/protobuf";
import { RouterChangedSchema } from "@stratus/contracts/events/v1";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  type AdapterUnderTest,
  asProject,
  eventually,
  type NetworkClient,
  refusal,
  startAdapter,
  tenantNetwork,
} from "./helpers.js";

describe("routers through the Networking API's operations", () => {
  let adapter: AdapterUnderTest;
  let net: NetworkClient;
  const events = () => adapter.events;
  const ext: Record<string, { networkId: string; subnetId: string }> = {};

  beforeAll(async () => {
    adapter = await startAdapter({ events: "stratus.router.>" });
    net = adapter.net;
    for (const [name, cidr] of [
      ["public", "203.0.113.0/24"],
      ["other-public", "198.51.100.0/24"],
    ] as const) {
      const { network } = await net.createNetwork({ name, routerExternal: true });
      const { subnet } = await net.createSubnet({ networkId: network!.id, cidr });
      ext[name] = { networkId: network!.id, subnetId: subnet!.id };
    }
  });
  afterAll(async () => {
    await adapter?.close();
  });

  const gatewayIps = async (routerId: string) =>
    (await net.getRouter({ id: routerId })).router!.externalFixedIps.map((f) => f.ipAddress);

  it("sets, changes, moves and clears the external gateway; its addresses come and go with it", async () => {
    const { router } = await net.createRouter({
      name: "edge",
      projectId: "p1",
      description: "to the world",
      externalNetworkId: ext.public!.networkId,
      externalFixedIps: [{ subnetId: ext.public!.subnetId, ipAddress: "203.0.113.10" }],
      enableSnat: false,
    });
    expect(router).toMatchObject({
      description: "to the world",
      adminStateUp: true,
      enableSnat: false,
      externalNetworkId: ext.public!.networkId,
      revisionNumber: 1n,
    });
    expect(router!.externalFixedIps.map((f) => f.ipAddress)).toEqual(["203.0.113.10"]);
    const gateway = (await net.listPorts({ deviceId: router!.id })).ports[0]!;
    expect(gateway).toMatchObject({ deviceOwner: "network:router_gateway", projectId: "" });

    await net.updateRouter({
      id: router!.id,
      updateExternalGateway: true,
      externalNetworkId: ext.public!.networkId,
      externalFixedIps: [{ ipAddress: "203.0.113.11" }],
    });
    expect(await gatewayIps(router!.id)).toEqual(["203.0.113.11"]);
    const { router: moved } = await net.updateRouter({
      id: router!.id,
      name: "edge-2",
      updateExternalGateway: true,
      externalNetworkId: ext["other-public"]!.networkId,
    });
    expect(moved).toMatchObject({ name: "edge-2", externalNetworkId: ext["other-public"]!.networkId });
    expect(moved!.externalFixedIps[0]!.ipAddress).toMatch(/^198\.51\.100\./);
    expect(moved!.revisionNumber).toBeGreaterThan(router!.revisionNumber);
    // The first network's address is free again.
    const reuse = (
      await net.createPort({ networkId: ext.public!.networkId, fixedIps: [{ ipAddress: "203.0.113.11" }] })
    ).port!;
    await net.deletePort({ id: reuse.id });

    const { router: cleared } = await net.updateRouter({
      id: router!.id,
      updateExternalGateway: true,
      externalNetworkId: "",
    });
    expect(cleared).toMatchObject({ externalNetworkId: "", externalFixedIps: [] });
    expect((await net.listPorts({ deviceId: router!.id })).ports).toEqual([]);

    const { network: internal } = await net.createNetwork({ name: "not-external" });
    expect(
      (
        await refusal(
          net.updateRouter({ id: router!.id, updateExternalGateway: true, externalNetworkId: internal!.id }),
        )
      ).message,
    ).toBe(`Bad router request: Network ${internal!.id} is not an external network.`);
    // Addresses and SNAT of a gateway are for admins.
    const theirs = await refusal(
      asProject("p1", () =>
        net.createRouter({
          name: "x",
          externalNetworkId: ext.public!.networkId,
          externalFixedIps: [{ ipAddress: "203.0.113.99" }],
        }),
      ),
    );
    expect(theirs.kind).toBe("forbidden");
    await net.deleteRouter({ id: router!.id });
    await eventually(async () => {
      const mine = events().map((e) => ({ subject: e.subject, ev: fromBinary(RouterChangedSchema, e.data) }));
      const subjects = mine.filter((e) => e.ev.routerId === router!.id).map((e) => e.subject);
      expect(subjects[0]).toBe("stratus.router.created");
      expect(subjects).toContain("stratus.router.updated");
      expect(subjects.at(-1)).toBe("stratus.router.deleted");
    });
  });

  it("adds interfaces by subnet or by port, refuses clashes, removes them by subnet or by port", async () => {
    const a = await tenantNetwork(net, "10.140.0.0/24");
    const b = await tenantNetwork(net, "10.141.0.0/24");
    const overlapping = await tenantNetwork(net, "10.140.0.0/25");
    const { router } = await net.createRouter({ name: "core", projectId: "p1" });

    const bySubnet = await net.addRouterInterface({ routerId: router!.id, subnetId: a.subnetId });
    expect(bySubnet.interface).toMatchObject({
      routerId: router!.id,
      subnetId: a.subnetId,
      subnetIds: [a.subnetId],
      networkId: a.networkId,
      projectId: "p1",
    });
    const clash = await refusal(
      net.addRouterInterface({ routerId: router!.id, subnetId: overlapping.subnetId }),
    );
    expect(clash.message).toBe(
      `Bad router request: Cidr 10.140.0.0/25 of subnet ${overlapping.subnetId} overlaps with cidr 10.140.0.0/24 of subnet ${a.subnetId}.`,
    );
    expect((await refusal(net.addRouterInterface({ routerId: router!.id }))).kind).toBe("invalid_input");
    expect(
      (
        await refusal(
          net.addRouterInterface({
            routerId: router!.id,
            subnetId: b.subnetId,
            portId: bySubnet.interface!.portId,
          }),
        )
      ).kind,
    ).toBe("invalid_input");

    // By port: a free port with an address becomes the interface; one in use, or address-less, does not.
    const used = (
      await net.createPort({ networkId: b.networkId, deviceId: "vm-1", deviceOwner: "compute:nova" })
    ).port!;
    const inUse = await refusal(net.addRouterInterface({ routerId: router!.id, portId: used.id }));
    expect(inUse.kind).toBe("conflict");
    expect(inUse.message).toBe(
      `Unable to complete operation on port ${used.id} for network ${b.networkId}. Port already has an attached device vm-1.`,
    );
    const bare = (await net.createPort({ networkId: b.networkId, noFixedIps: true })).port!;
    expect((await refusal(net.addRouterInterface({ routerId: router!.id, portId: bare.id }))).message).toBe(
      "Bad router request: Router port must have at least one fixed IP.",
    );
    const free = (await net.createPort({ networkId: b.networkId, fixedIps: [{ ipAddress: "10.141.0.254" }] }))
      .port!;
    const byPort = await net.addRouterInterface({ routerId: router!.id, portId: free.id });
    expect(byPort.interface).toMatchObject({ portId: free.id, subnetIds: [b.subnetId] });
    expect((await net.getPort({ id: free.id })).port).toMatchObject({
      deviceId: router!.id,
      deviceOwner: "network:router_interface",
    });
    expect(byPort.router!.interfaces.map((i) => i.subnetId).sort()).toEqual([a.subnetId, b.subnetId].sort());

    const mismatch = await refusal(
      net.removeRouterInterface({ routerId: router!.id, portId: free.id, subnetId: a.subnetId }),
    );
    expect(mismatch.message).toBe(
      `Subnet on port ${free.id} does not match the requested subnet ${a.subnetId}.`,
    );
    const removed = await net.removeRouterInterface({ routerId: router!.id, portId: free.id });
    expect(removed.interface).toMatchObject({ portId: free.id, subnetIds: [b.subnetId] });
    expect((await refusal(net.getPort({ id: free.id }))).kind).toBe("not_found");
    await net.removeRouterInterface({ routerId: router!.id, subnetId: a.subnetId });
    expect((await net.getRouter({ id: router!.id })).router!.interfaces).toEqual([]);

    const noneBySubnet = await refusal(
      net.removeRouterInterface({ routerId: router!.id, subnetId: a.subnetId }),
    );
    expect(noneBySubnet.kind).toBe("not_found");
    expect(noneBySubnet.message).toBe(`Router ${router!.id} has no interface on subnet ${a.subnetId}`);
    const noneByPort = await refusal(net.removeRouterInterface({ routerId: router!.id, portId: used.id }));
    expect(noneByPort.message).toBe(`Router ${router!.id} does not have an interface with id ${used.id}`);
    await net.deleteRouter({ id: router!.id });
  });
});
