// Get me a network, network side: dry runs that report every missing prerequisite and create
// nothing, and twenty concurrent first calls for one project that agree on one topology —
// on PGlite (one adapter) and on PostgreSQL (two adapters sharing the database).
import { NetworkService } from "@stratus/contracts/network/v1";
import { serviceClient } from "@stratus/runtime";
import { postgresAvailable, startMesh } from "@stratus/runtime/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { adaptersOnPostgres, type NetworkClient, refusal } from "./helpers.js";

const havePostgres = await postgresAvailable();
if (!havePostgres)
  console.warn("auto-allocation.test: PostgreSQL not reachable; the PostgreSQL half is skipped");

interface Backend {
  clients: NetworkClient[];
  close(): Promise<void>;
}

async function pgliteBackend(): Promise<Backend> {
  const mesh = await startMesh({ services: ["scheduler", "network-adapter"] });
  return { clients: [serviceClient(NetworkService, mesh.url("network-adapter"))], close: () => mesh.close() };
}

async function postgresBackend(): Promise<Backend> {
  return adaptersOnPostgres("stratus_auto");
}

const backends: [string, () => Promise<Backend>, boolean][] = [
  ["PGlite", pgliteBackend, true],
  ["PostgreSQL, two adapters", postgresBackend, havePostgres],
];

describe.each(backends)("auto-allocated topology on %s", (_name, make, enabled) => {
  let backend: Backend;
  let net: NetworkClient;

  beforeAll(async () => {
    if (!enabled) return;
    backend = await make();
    net = backend.clients[0]!;
  });
  afterAll(async () => {
    await backend?.close();
  });

  const counts = async () => ({
    networks: (await net.listNetworks({})).networks.length,
    routers: (await net.listRouters({})).routers.length,
    ports: (await net.listPorts({})).ports.length,
    subnets: (await net.listSubnets({})).subnets.length,
  });

  it.runIf(enabled)("dry run reports each missing prerequisite and creates nothing", async () => {
    const before = await counts();
    const none = await net.getAutoAllocatedTopology({ projectId: "p-auto", dryRun: true });
    expect(none.canAllocate).toBe(false);
    expect(none.reasons).toEqual(["No default router:external network", "No default subnetpools defined"]);
    expect(none.networkId).toBe("");

    await net.createSubnetPool({
      pool: {
        name: "default-v4",
        prefixes: ["10.128.0.0/16"],
        defaultPrefixlen: 26,
        isDefault: true,
        shared: true,
      },
    });
    const noExternal = await net.getAutoAllocatedTopology({ projectId: "p-auto", dryRun: true });
    expect(noExternal).toMatchObject({ canAllocate: false, reasons: ["No default router:external network"] });
    expect(await counts()).toEqual(before);

    // A real call without the default external network fails with the reason and leaves nothing.
    const err = await refusal(net.getAutoAllocatedTopology({ projectId: "p-auto" }));
    expect(err.kind).toBe("conflict");
    expect(err.message).toBe("Deployment error: No default router:external network.");
    expect(await counts()).toEqual(before);

    const { network: ext } = await net.createNetwork({
      name: "public",
      routerExternal: true,
      isDefault: true,
    });
    await net.createSubnet({ networkId: ext!.id, cidr: "203.0.113.0/24" });
    const ready = await net.getAutoAllocatedTopology({ projectId: "p-auto", dryRun: true });
    expect(ready).toMatchObject({ canAllocate: true, reasons: [], networkId: "" });
    expect((await net.listNetworks({ projectId: "p-auto" })).networks).toEqual([]);
  });

  it.runIf(enabled)("twenty concurrent first calls for one project make exactly one topology", async () => {
    const answers = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        backend.clients[i % backend.clients.length]!.getAutoAllocatedTopology({ projectId: "p-auto" }),
      ),
    );
    const networkIds = new Set(answers.map((a) => a.networkId));
    expect(networkIds.size).toBe(1);
    expect(new Set(answers.map((a) => a.routerId)).size).toBe(1);
    const { networkId, subnetId, routerId } = answers[0]!;

    const networks = (await net.listNetworks({ projectId: "p-auto" })).networks;
    expect(networks.map((n) => n.id)).toEqual([networkId]);
    expect(networks[0]).toMatchObject({ name: "auto_allocated_network", adminStateUp: true, shared: false });
    const subnets = (await net.listSubnets({ networkId })).subnets;
    expect(subnets.map((s) => [s.id, s.cidr, s.gatewayIp])).toEqual([
      [subnetId, "10.128.0.0/26", "10.128.0.1"],
    ]);
    const routers = (await net.listRouters({ projectId: "p-auto" })).routers;
    expect(routers).toHaveLength(1);
    expect(routers[0]!.id).toBe(routerId);
    expect(routers[0]!.externalFixedIps[0]!.ipAddress).toMatch(/^203\.0\.113\./);
    expect(routers[0]!.interfaces.map((i) => i.subnetId)).toEqual([subnetId]);
    const iface = (await net.getPort({ id: routers[0]!.interfaces[0]!.portId })).port!;
    expect(iface.deviceOwner).toBe("network:router_interface");
    expect(iface.fixedIps.map((f) => f.ipAddress)).toEqual(["10.128.0.1"]);

    // Idempotent afterwards; a dry run now passes; the network is available to the project.
    expect((await net.getAutoAllocatedTopology({ projectId: "p-auto" })).networkId).toBe(networkId);
    const available = (await net.listAvailableNetworks({ projectId: "p-auto" })).networks.map((n) => n.name);
    expect(available).toEqual(["auto_allocated_network"]);

    // Another project gets its own, from the next block of the pool.
    const other = await net.getAutoAllocatedTopology({ projectId: "p-other" });
    expect(other.networkId).not.toBe(networkId);
    expect((await net.getSubnet({ id: other.subnetId })).subnet!.cidr).toBe("10.128.0.64/26");
  });

  it.runIf(enabled)(
    "deleting the topology removes network, subnet, router and ports; the next call makes a new one",
    async () => {
      const { networkId, routerId } = await net.getAutoAllocatedTopology({ projectId: "p-auto" });
      await net.deleteAutoAllocatedTopology({ projectId: "p-auto" });
      expect((await refusal(net.getNetwork({ id: networkId }))).kind).toBe("not_found");
      expect((await refusal(net.getRouter({ id: routerId }))).kind).toBe("not_found");
      expect((await net.listPorts({ deviceId: routerId })).ports).toEqual([]);
      expect((await refusal(net.deleteAutoAllocatedTopology({ projectId: "p-auto" }))).kind).toBe(
        "not_found",
      );
      const again = await net.getAutoAllocatedTopology({ projectId: "p-auto" });
      expect(again.networkId).not.toBe(networkId);
      expect((await net.getSubnet({ id: again.subnetId })).subnet!.cidr).toBe("10.128.0.0/26");
    },
  );
});
