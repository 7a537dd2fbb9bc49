// Quotas at the owner: Neutron's defaults, a project's own limits (set, listed, reset), details
// (used, limit, reserved), and enforcement on every path that makes a network, subnet, port,
// router or subnet pool (the per-turn port statements, the transactions, get-me-a-network) with
// Neutron's OverQuota (a conflict), and get-me-a-network's refusal without a default pool in
// Neutron's words. On PostgreSQL, two adapters racing for the last units: exactly as many
// creations win as the limit leaves, and the count stays exact.
import { IpAllocation, NetworkService } from "@stratus/contracts/network/v1";
import { serviceClient } from "@stratus/runtime";
import { type Mesh, postgresAvailable, startMesh } from "@stratus/runtime/testing";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  adaptersOnPostgres,
  asProject,
  type NetworkClient,
  refusal,
  type SharedDatabaseAdapters,
  tenantNetwork,
} from "./helpers.js";

const overQuota = (resource: string) => `Quota exceeded for resources: ['${resource}'].`;

describe("quotas", () => {
  let mesh: Mesh;
  let net: NetworkClient;

  beforeAll(async () => {
    mesh = await startMesh({ services: ["network-adapter"] });
    net = serviceClient(NetworkService, mesh.url("network-adapter"));
  });
  afterAll(async () => {
    await mesh?.close();
  });

  it("starts from Neutron's defaults; a project's own limits are set, listed, detailed and reset", async () => {
    const defaults = { network: 100, subnet: 100, port: 500, router: 10, subnetpool: -1 };
    expect((await net.getDefaultQuota({})).quota).toMatchObject(defaults);
    expect((await net.getQuota({ projectId: "p-limits" })).quota).toMatchObject(defaults);

    await tenantNetwork(net, "10.90.0.0/24", "p-limits");
    const set = await net.updateQuota({ projectId: "p-limits", port: 7, network: 3 });
    expect(set.quota).toMatchObject({ ...defaults, port: 7, network: 3 });
    expect((await net.listQuotas({})).quotas).toContainEqual(
      expect.objectContaining({
        projectId: "p-limits",
        quota: expect.objectContaining({ port: 7, network: 3 }),
      }),
    );
    const details = await net.getQuotaDetails({ projectId: "p-limits" });
    expect(details.network).toMatchObject({ used: 1, limit: 3, reserved: 0 });
    expect(details.subnet).toMatchObject({ used: 1, limit: 100, reserved: 0 });
    expect(details.port).toMatchObject({ used: 0, limit: 7, reserved: 0 });
    const legacy = await net.getQuotas({ projectId: "p-limits" });
    expect(legacy).toMatchObject({ ports: 7, networks: 3, networksUsed: 1, floatingIps: 50 });

    // A limit below what the project holds is refused unless forced.
    const below = await refusal(net.updateQuota({ projectId: "p-limits", network: 0 }));
    expect(below.kind).toBe("invalid_input");
    expect(below.message).toBe("Quota limit 0 for network must be greater than or equal to already used 1");
    expect((await net.updateQuota({ projectId: "p-limits", network: 0, force: true })).quota!.network).toBe(
      0,
    );
    expect((await refusal(net.updateQuota({ projectId: "p-limits", port: -2 }))).kind).toBe("invalid_input");

    await net.deleteQuota({ projectId: "p-limits" });
    expect((await net.getQuota({ projectId: "p-limits" })).quota).toMatchObject(defaults);
    expect((await refusal(net.deleteQuota({ projectId: "p-limits" }))).kind).toBe("not_found");
  });

  it("only an admin changes quotas; a project reads its own", async () => {
    expect((await asProject("p-self", () => net.getQuota({ projectId: "p-self" }))).quota!.port).toBe(500);
    expect((await refusal(asProject("p-self", () => net.getQuota({ projectId: "p-other" })))).kind).toBe(
      "forbidden",
    );
    expect(
      (await refusal(asProject("p-self", () => net.updateQuota({ projectId: "p-self", port: 1000 })))).kind,
    ).toBe("forbidden");
    expect((await refusal(asProject("p-self", () => net.deleteQuota({ projectId: "p-self" })))).kind).toBe(
      "forbidden",
    );
  });

  it("holds ports to the limit on every path, and frees the unit with the port", async () => {
    const { networkId, subnetId } = await tenantNetwork(net, "10.91.0.0/24", "p-ports");
    await net.updateQuota({ projectId: "p-ports", port: 3 });
    // The per-turn statement (automatic address), the transaction (fixed IP) and none.
    const a = (await net.createPort({ networkId, projectId: "p-ports" })).port!;
    await net.createPort({
      networkId,
      projectId: "p-ports",
      fixedIps: [{ subnetId, ipAddress: "10.91.0.50" }],
    });
    await net.createPort({ networkId, projectId: "p-ports", ipAllocation: IpAllocation.NONE });
    for (const req of [
      { networkId, projectId: "p-ports" },
      { networkId, projectId: "p-ports", fixedIps: [{ ipAddress: "10.91.0.60" }] },
    ]) {
      const refused = await refusal(net.createPort(req));
      expect(refused.kind).toBe("conflict");
      expect(refused.message).toBe(overQuota("port"));
    }
    expect((await net.getQuotaDetails({ projectId: "p-ports" })).port).toMatchObject({ used: 3, limit: 3 });
    // Nothing of a refused port was kept: its address is still free.
    await net.deletePort({ id: a.id });
    const again = (
      await net.createPort({ networkId, projectId: "p-ports", fixedIps: [{ ipAddress: "10.91.0.60" }] })
    ).port!;
    expect(again.fixedIps[0]!.ipAddress).toBe("10.91.0.60");
  });

  it("holds deferred ports of a routed network, networks, subnets, routers and subnet pools to theirs", async () => {
    await net.updateQuota({ projectId: "p-res", port: 1, network: 1, subnet: 1, router: 1, subnetpool: 1 });
    const { network } = await net.createNetwork({
      name: "routed-quota",
      projectId: "p-res",
      segments: [
        { name: "a", networkType: "vlan", physicalNetwork: "physnet-qa", segmentationId: 901 },
        { name: "b", networkType: "vlan", physicalNetwork: "physnet-qb", segmentationId: 902 },
      ],
    });
    const segmentId = network!.segments[0]!.id;
    await net.createSubnet({ networkId: network!.id, segmentId, cidr: "10.92.0.0/24" });
    const deferred = (await net.createPort({ networkId: network!.id, projectId: "p-res" })).port!;
    expect(deferred.ipAllocation).toBe(IpAllocation.DEFERRED);
    expect((await refusal(net.createPort({ networkId: network!.id, projectId: "p-res" }))).message).toBe(
      overQuota("port"),
    );
    expect((await refusal(net.createNetwork({ name: "second", projectId: "p-res" }))).message).toBe(
      overQuota("network"),
    );
    expect(
      (
        await refusal(
          net.createSubnet({
            networkId: network!.id,
            segmentId: network!.segments[1]!.id,
            cidr: "10.93.0.0/24",
          }),
        )
      ).message,
    ).toBe(overQuota("subnet"));
    await net.createRouter({ name: "r1", projectId: "p-res" });
    expect((await refusal(net.createRouter({ name: "r2", projectId: "p-res" }))).message).toBe(
      overQuota("router"),
    );
    await net.createSubnetPool({ pool: { name: "sp1", projectId: "p-res", prefixes: ["172.30.0.0/16"] } });
    expect(
      (
        await refusal(
          net.createSubnetPool({ pool: { name: "sp2", projectId: "p-res", prefixes: ["172.31.0.0/16"] } }),
        )
      ).message,
    ).toBe(overQuota("subnetpool"));
  });

  it("get-me-a-network is held to the project's quotas and leaves nothing behind when refused", async () => {
    const { network: ext } = await net.createNetwork({
      name: "public-q",
      routerExternal: true,
      isDefault: true,
    });
    await net.createSubnet({ networkId: ext!.id, cidr: "198.51.100.0/24" });
    // As Neutron says it when there is no default pool to draw the project's subnet from.
    expect((await refusal(net.getAutoAllocatedTopology({ projectId: "p-auto-q" }))).message).toBe(
      "Deployment error: Unable to provide project private network.",
    );
    await net.createSubnetPool({
      pool: {
        name: "default-q",
        prefixes: ["10.200.0.0/16"],
        defaultPrefixlen: 26,
        isDefault: true,
        shared: true,
      },
    });
    await net.updateQuota({ projectId: "p-auto-q", router: 0 });
    const refused = await refusal(net.getAutoAllocatedTopology({ projectId: "p-auto-q" }));
    expect(refused.kind).toBe("conflict");
    expect(refused.message).toBe(overQuota("router"));
    expect((await net.listNetworks({ projectId: "p-auto-q" })).networks).toEqual([]);
    expect((await net.getQuotaDetails({ projectId: "p-auto-q" })).network!.used).toBe(0);
    await net.deleteQuota({ projectId: "p-auto-q" });
    expect((await net.getAutoAllocatedTopology({ projectId: "p-auto-q" })).networkId).not.toBe("");
  });
});

const havePostgres = await postgresAvailable();

describe.runIf(havePostgres)("quotas raced by two adapters on one PostgreSQL database", () => {
  let shared: SharedDatabaseAdapters;

  beforeAll(async () => {
    shared = await adaptersOnPostgres("stratus_quota");
  });
  afterAll(async () => {
    await shared?.close();
  });

  it("sixty creations for the last ten ports and twelve for the last three networks: exactly ten and three win", async () => {
    const { clients } = shared;
    const { networkId, subnetId } = await tenantNetwork(clients[0]!, "10.94.0.0/24", "p-race");
    await clients[1]!.updateQuota({ projectId: "p-race", port: 10, network: 4 });
    const ports = await Promise.allSettled(
      Array.from({ length: 60 }, (_, i) =>
        clients[i % 2]!.createPort(
          i % 3 === 0
            ? { networkId, projectId: "p-race", fixedIps: [{ subnetId, ipAddress: `10.94.0.${100 + i}` }] }
            : { networkId, projectId: "p-race" },
        ),
      ),
    );
    const networks = await Promise.allSettled(
      Array.from({ length: 12 }, (_, i) =>
        clients[i % 2]!.createNetwork({ name: `n${i}`, projectId: "p-race" }),
      ),
    );
    for (const [results, wins, resource] of [
      [ports, 10, "port"],
      [networks, 3, "network"],
    ] as const) {
      expect(results.filter((r) => r.status === "fulfilled")).toHaveLength(wins);
      for (const r of results) {
        if (r.status === "fulfilled") continue;
        expect(r.reason).toMatchObject({ kind: "conflict", message: overQuota(resource) });
      }
    }
    const sql = new pg.Client({ connectionString: shared.databaseUrl });
    await sql.connect();
    try {
      const { rows } = await sql.query(
        `SELECT (SELECT count(*)::int FROM ports WHERE project_id = 'p-race') AS ports,
           (SELECT count(*)::int FROM networks WHERE project_id = 'p-race') AS networks,
           (SELECT sum(in_use)::int FROM quota_usages WHERE project_id = 'p-race' AND resource = 'port') AS ports_counted,
           (SELECT sum(in_use)::int FROM quota_usages WHERE project_id = 'p-race' AND resource = 'network') AS networks_counted`,
      );
      expect(rows[0]).toEqual({ ports: 10, networks: 4, ports_counted: 10, networks_counted: 4 });

      // Unlimited, creations and deletions on both adapters count in their connections' slots;
      // the sum stays the count, and a limit set afterwards holds at it.
      await clients[0]!.updateQuota({ projectId: "p-race", port: -1 });
      const more = await Promise.all(
        Array.from(
          { length: 40 },
          async (_, i) => (await clients[i % 2]!.createPort({ networkId, projectId: "p-race" })).port!,
        ),
      );
      await Promise.all(more.slice(0, 15).map((p, i) => clients[i % 2]!.deletePort({ id: p.id })));
      const counted = await sql.query(
        `SELECT (SELECT count(*)::int FROM ports WHERE project_id = 'p-race') AS ports,
           (SELECT sum(in_use)::int FROM quota_usages WHERE project_id = 'p-race' AND resource = 'port') AS counted`,
      );
      expect(counted.rows[0]).toEqual({ ports: 35, counted: 35 });
      expect((await clients[1]!.getQuotaDetails({ projectId: "p-race" })).port!.used).toBe(35);
      await clients[1]!.updateQuota({ projectId: "p-race", port: 35 });
      expect((await refusal(clients[0]!.createPort({ networkId, projectId: "p-race" }))).message).toBe(
        overQuota("port"),
      );
    } finally {
      await sql.end();
    }
  });
});
