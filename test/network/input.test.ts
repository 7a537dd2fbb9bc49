// No input makes the network-adapter fail inside (an internal error, the edge's 500): random
// requests to the calls the Networking API uses, with ids that are not ids or name nothing,
// strings with NUL characters or far too long, numbers anywhere in int32, and list queries of
// any shape, are each answered or refused with a kind the edge maps to a 4xx.
import { NetworkService } from "@stratus/contracts/network/v1";
import { StratusError, serviceClient } from "@stratus/runtime";
import { type Mesh, startMesh } from "@stratus/runtime/testing";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type NetworkClient, tenantNetwork } from "./helpers.js";

describe("every input is answered or refused, never an internal error", () => {
  let mesh: Mesh;
  let net: NetworkClient;
  const known: string[] = [];

  beforeAll(async () => {
    mesh = await startMesh({ services: ["network-adapter"] });
    net = serviceClient(NetworkService, mesh.url("network-adapter"));
    const { networkId, subnetId } = await tenantNetwork(net, "10.160.0.0/24");
    const port = (await net.createPort({ networkId })).port!;
    const { router } = await net.createRouter({ name: "r" });
    const segmentId = (await net.getNetwork({ id: networkId })).network!.segments[0]!.id;
    known.push(networkId, subnetId, port.id, router!.id, segmentId);
  });
  afterAll(async () => {
    await mesh?.close();
  });

  it("random requests to thirty calls", async () => {
    const text = fc.oneof(
      fc.string({ maxLength: 20 }),
      fc.constantFrom(
        "",
        "\0",
        "a\0b",
        "x".repeat(300),
        "x".repeat(5000),
        "10.0.0.1",
        "10.160.0.0/24",
        "2001:db8::/64",
      ),
    );
    const id = fc.oneof(fc.constantFrom(...known), fc.uuid(), text);
    const int = fc.oneof(fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }), fc.integer({ min: -2, max: 40 }));
    const ip = fc.oneof(fc.ipV4(), text);
    const cidr = fc.oneof(
      fc.tuple(fc.ipV4(), fc.integer({ min: 0, max: 33 })).map(([a, p]) => `${a}/${p}`),
      fc.constantFrom("10.161.0.0/24", "10.0.0.0/8", "0.0.0.0/0"),
      text,
    );
    const fixedIps = fc.array(fc.record({ subnetId: id, ipAddress: ip }, { requiredKeys: [] }), {
      maxLength: 3,
    });
    const query = fc.record(
      {
        filters: fc.array(
          fc.record({
            field: fc.oneof(
              fc.constantFrom("name", "id", "shared", "mtu", "fixed_ips", "changed_since", "revision_number"),
              text,
            ),
            values: fc.array(text, { maxLength: 3 }),
          }),
          { maxLength: 3 },
        ),
        sorts: fc.array(
          fc.record({
            field: fc.oneof(fc.constantFrom("name", "created_at", "mtu", "id"), text),
            descending: fc.boolean(),
          }),
          {
            maxLength: 2,
          },
        ),
        limit: int,
        marker: fc.oneof(fc.constant(""), id),
        pageReverse: fc.boolean(),
      },
      { requiredKeys: [] },
    );
    const segment = fc.record({
      networkId: id,
      networkType: fc.oneof(fc.constantFrom("vlan", "vxlan", "geneve", "flat"), text),
      physicalNetwork: text,
      segmentationId: int,
    });
    const calls: fc.Arbitrary<() => Promise<unknown>>[] = [
      fc
        .record({
          name: text,
          description: text,
          projectId: text,
          mtu: int,
          segments: fc.array(segment, { maxLength: 2 }),
        })
        .map((r) => () => net.createNetwork(r)),
      fc
        .record(
          { id, name: text, mtu: int, isDefault: fc.boolean(), routerExternal: fc.boolean() },
          { requiredKeys: ["id"] },
        )
        .map((r) => () => net.updateNetwork(r)),
      id.map((i) => () => net.getNetwork({ id: i })),
      id.map((i) => () => net.deleteNetwork({ id: i })),
      query.map((q) => () => net.listNetworks({ query: q })),
      query.map((q) => () => net.listPorts({ query: q })),
      query.map((q) => () => net.listSubnets({ query: q })),
      query.map((q) => () => net.listRouters({ query: q })),
      segment.map((s) => () => net.createSegment({ segment: s })),
      fc.record({ id, name: text, description: text }).map((r) => () => net.updateSegment(r)),
      fc
        .record(
          {
            networkId: id,
            cidr,
            gatewayIp: ip,
            ipVersion: int,
            prefixlen: int,
            subnetpoolId: id,
            segmentId: id,
            allocationPools: fc.array(fc.record({ start: ip, end: ip }), { maxLength: 2 }),
            dnsNameservers: fc.array(ip, { maxLength: 7 }),
            hostRoutes: fc.array(fc.record({ destination: cidr, nexthop: ip }), { maxLength: 2 }),
            useDefaultSubnetpool: fc.boolean(),
          },
          { requiredKeys: ["networkId"] },
        )
        .map((r) => () => net.createSubnet(r)),
      fc
        .record(
          {
            id,
            updateGatewayIp: fc.boolean(),
            gatewayIp: ip,
            updateAllocationPools: fc.boolean(),
            allocationPools: fc.array(fc.record({ start: ip, end: ip }), { maxLength: 2 }),
            segmentId: id,
          },
          { requiredKeys: ["id"] },
        )
        .map((r) => () => net.updateSubnet(r)),
      fc
        .record(
          {
            networkId: id,
            fixedIps,
            macAddress: text,
            bindingHostId: text,
            noFixedIps: fc.boolean(),
            ipAllocation: fc.integer({ min: 0, max: 5 }),
          },
          { requiredKeys: ["networkId"] },
        )
        .map((r) => () => net.createPort(r)),
      fc
        .record(
          {
            id,
            name: text,
            updateFixedIps: fc.boolean(),
            fixedIps,
            macAddress: text,
            bindingHostId: text,
            deviceOwner: text,
          },
          { requiredKeys: ["id"] },
        )
        .map((r) => () => net.updatePort(r)),
      fc.record({ id, refuseIfAttached: fc.boolean() }).map((r) => () => net.deletePort(r)),
      fc.record({ portId: id, host: text }).map((r) => () => net.bindPort(r)),
      fc
        .record({ serverId: text, host: text, portIds: fc.array(id, { maxLength: 3 }) })
        .map((r) => () => net.checkAndUpdatePorts(r)),
      fc
        .record({ name: text, externalNetworkId: id, externalFixedIps: fixedIps }, { requiredKeys: [] })
        .map((r) => () => net.createRouter(r)),
      fc
        .record(
          { id, updateExternalGateway: fc.boolean(), externalNetworkId: id, externalFixedIps: fixedIps },
          { requiredKeys: ["id"] },
        )
        .map((r) => () => net.updateRouter(r)),
      fc
        .record({ routerId: id, subnetId: id, portId: id }, { requiredKeys: [] })
        .map((r) => () => net.addRouterInterface(r)),
      fc
        .record({ routerId: id, subnetId: id, portId: id }, { requiredKeys: [] })
        .map((r) => () => net.removeRouterInterface(r)),
      fc
        .record({
          prefixes: fc.array(cidr, { maxLength: 2 }),
          minPrefixlen: int,
          maxPrefixlen: int,
          defaultPrefixlen: int,
          ipVersion: int,
          name: text,
        })
        .map((pool) => () => net.createSubnetPool({ pool })),
      fc
        .record(
          { id, updatePrefixes: fc.boolean(), prefixes: fc.array(cidr, { maxLength: 2 }), minPrefixlen: int },
          { requiredKeys: ["id"] },
        )
        .map((r) => () => net.updateSubnetPool(r)),
      fc
        .record({ projectId: text, port: int, network: int, force: fc.boolean() })
        .map((r) => () => net.updateQuota(r)),
      text.map((p) => () => net.getQuotaDetails({ projectId: p })),
      fc.record({ projectId: text, dryRun: fc.boolean() }).map((r) => () => net.getAutoAllocatedTopology(r)),
      fc
        .record({ host: text, physicalNetworks: fc.array(text, { maxLength: 2 }) })
        .map((r) => () => net.reportHostPhysicalNetworks(r)),
      id.map((i) => () => net.deleteSegment({ id: i })),
      id.map((i) => () => net.deleteSubnet({ id: i })),
      id.map((i) => () => net.deleteRouter({ id: i })),
    ];
    await fc.assert(
      fc.asyncProperty(fc.oneof(...calls), async (call) => {
        try {
          await call();
        } catch (err) {
          expect(err).toBeInstanceOf(StratusError);
          expect(`${(err as StratusError).kind}: ${(err as Error).message}`).not.toMatch(
            /^(internal|unavailable):/,
          );
        }
      }),
      { numRuns: 600 },
    );
  });
});
