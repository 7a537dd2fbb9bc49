// A routed network with two segments (one per rack) in a mesh of scheduler + network-adapter:
// host mapping from reported physical networks, deferred ports bound / re-bound / refused,
// CheckAndUpdatePorts (verifies, never allocates), placement kept in step, NATS events.
import { randomUUID } from "node:crypto";
import { fromBinary } from "@bufbuild/protobuf";
import { IpAddressChangedSchema, PortChange, PortChangedSchema } from "@stratus/contracts/events/v1";
import { IpAllocation, NetworkService } from "@stratus/contracts/network/v1";
import { PlacementService } from "@stratus/contracts/scheduler/v1/placement";
import { defaultRoles, runWithContext, serviceClient, userContext } from "@stratus/runtime";
import { type Mesh, startMesh } from "@stratus/runtime/testing";
import type { NatsConnection } from "nats";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { eventually, type NetworkClient, refusal } from "./helpers.js";

/** Runs a call as a non-admin user of a project (the headers the api would send). */
const asProject = <T>(project: string, fn: () => Promise<T>) =>
  runWithContext(userContext({ userId: "u", projectId: project, roles: defaultRoles(false) }), fn);

type PlacementClient = ReturnType<typeof serviceClient<typeof PlacementService>>;

async function computeNode(placement: PlacementClient, host: string): Promise<string> {
  const uuid = randomUUID();
  await placement.ensureResourceProvider({ uuid, name: host });
  await placement.setInventories({
    providerUuid: uuid,
    providerGeneration: 0n,
    inventories: [{ resourceClass: "VCPU", total: 8n }],
  });
  return uuid;
}

/**
 * A routed network of p1 with two VLAN segments, one on physnet-rack1 and one on physnet-rack2,
 * each with a subnet of the given CIDR: its id and the two segments' ids, in that order.
 */
async function twoRackNetwork(
  net: NetworkClient,
  name: string,
  opts: { shared: boolean; vlans: [number, number]; cidrs: [string, string] },
): Promise<{ networkId: string; segments: [string, string] }> {
  const { network } = await net.createNetwork({
    name,
    projectId: "p1",
    shared: opts.shared,
    segments: [1, 2].map((rack, i) => ({
      name: `rack${rack}`,
      networkType: "vlan",
      physicalNetwork: `physnet-rack${rack}`,
      segmentationId: opts.vlans[i]!,
    })),
  });
  const segments = [1, 2].map((rack) => network!.segments.find((s) => s.name === `rack${rack}`)!.id);
  for (const [i, segmentId] of segments.entries()) {
    await net.createSubnet({ networkId: network!.id, segmentId, cidr: opts.cidrs[i]! });
  }
  return { networkId: network!.id, segments: segments as [string, string] };
}

describe("routed networks, binding and placement", () => {
  let mesh: Mesh;
  let net: NetworkClient;
  let placement: PlacementClient;
  let nc: NatsConnection;
  const events: { subject: string; data: Uint8Array }[] = [];
  const cn: Record<string, string> = {};
  let networkId = "";
  let segA = "";
  let segB = "";

  beforeAll(async () => {
    mesh = await startMesh({ services: ["scheduler", "network-adapter"] });
    net = serviceClient(NetworkService, mesh.url("network-adapter"));
    placement = serviceClient(PlacementService, mesh.url("scheduler"));
    nc = await mesh.nats.connect("tools");
    const sub = nc.subscribe("stratus.>");
    void (async () => {
      for await (const m of sub) events.push({ subject: m.subject, data: m.data });
    })();
    for (const host of ["rack1-a", "rack1-b", "rack2-a", "lonely"])
      cn[host] = await computeNode(placement, host);
    // As the compute agents do at start: physnets of each host (lonely reaches none).
    await net.reportHostPhysicalNetworks({
      host: "rack1-a",
      physicalNetworks: ["physnet-rack1"],
      computeNodeUuid: cn["rack1-a"]!,
    });
    await net.reportHostPhysicalNetworks({
      host: "rack1-b",
      physicalNetworks: ["physnet-rack1"],
      computeNodeUuid: cn["rack1-b"]!,
    });
    await net.reportHostPhysicalNetworks({
      host: "rack2-a",
      physicalNetworks: ["physnet-rack2"],
      computeNodeUuid: cn["rack2-a"]!,
    });
    await net.reportHostPhysicalNetworks({
      host: "lonely",
      physicalNetworks: [],
      computeNodeUuid: cn.lonely!,
    });

    ({
      networkId,
      segments: [segA, segB],
    } = await twoRackNetwork(net, "routed", {
      shared: true,
      vlans: [101, 102],
      cidrs: ["10.1.0.0/24", "10.2.0.0/24"],
    }));
  });
  afterAll(async () => {
    await nc?.close();
    await mesh?.close();
  });

  it("maps hosts to segments by reported physical network", async () => {
    expect((await net.listHostSegments({ host: "rack1-a" })).mappings.map((m) => m.segmentId)).toEqual([
      segA,
    ]);
    expect((await net.listHostSegments({ host: "rack2-a" })).mappings.map((m) => m.segmentId)).toEqual([
      segB,
    ]);
    expect((await net.listHostSegments({ host: "lonely" })).mappings).toEqual([]);
    const onA = (await net.listHostSegments({ segmentId: segA })).mappings.map((m) => m.host).sort();
    expect(onA).toEqual(["rack1-a", "rack1-b"]);
    expect((await net.getNetwork({ id: networkId })).network!.routed).toBe(true);
  });

  it("a deferred port gets its address on bind, keeps it on the same segment, moves it to another, and an unmapped host changes nothing", async () => {
    const { port } = await net.createPort({ networkId, projectId: "p1" });
    expect(port!.ipAllocation).toBe(IpAllocation.DEFERRED);
    expect(port!.fixedIps).toEqual([]);

    const onA = await net.bindPort({ portId: port!.id, host: "rack1-a" });
    expect(onA.segmentId).toBe(segA);
    const ipA = onA.port!.fixedIps[0]!.ipAddress;
    expect(ipA).toMatch(/^10\.1\.0\./);
    expect(onA.port!.bindingHostId).toBe("rack1-a");

    const sameSegment = await net.bindPort({ portId: port!.id, host: "rack1-b" });
    expect(sameSegment.port!.fixedIps.map((f) => f.ipAddress)).toEqual([ipA]);

    const onB = await net.bindPort({ portId: port!.id, host: "rack2-a" });
    expect(onB.segmentId).toBe(segB);
    const ipB = onB.port!.fixedIps[0]!.ipAddress;
    expect(ipB).toMatch(/^10\.2\.0\./);
    expect(onB.port!.fixedIps).toHaveLength(1);

    const err = await refusal(net.bindPort({ portId: port!.id, host: "lonely" }));
    expect(err.kind).toBe("invalid_input");
    expect(err.message).toContain("Host lonely is not connected to any segments on routed provider network");
    const after = (await net.getPort({ id: port!.id })).port!;
    expect(after.bindingHostId).toBe("rack2-a");
    expect(after.fixedIps.map((f) => f.ipAddress)).toEqual([ipB]);

    // The move released the old address (and the events say so).
    await eventually(async () => {
      const ipEvents = events
        .filter((e) => e.subject.startsWith("stratus.ip."))
        .map((e) => ({ subject: e.subject, ev: fromBinary(IpAddressChangedSchema, e.data) }))
        .filter((e) => e.ev.portId === port!.id);
      expect(ipEvents.map((e) => `${e.subject} ${e.ev.ipAddress} ${e.ev.segmentId}`)).toEqual([
        `stratus.ip.allocated ${ipA} ${segA}`,
        `stratus.ip.released ${ipA} ${segA}`,
        `stratus.ip.allocated ${ipB} ${segB}`,
      ]);
      const bound = events
        .filter((e) => e.subject === "stratus.port.bound")
        .map((e) => fromBinary(PortChangedSchema, e.data))
        .filter((e) => e.portId === port!.id);
      expect(bound.map((b) => [b.change, b.host, b.ipAddresses])).toEqual([
        [PortChange.BOUND, "rack1-a", [ipA]],
        [PortChange.BOUND, "rack1-b", [ipA]],
        [PortChange.BOUND, "rack2-a", [ipB]],
      ]);
    });

    // Unbinding a deferred port releases its address.
    const unbound = await net.unbindPort({ portId: port!.id });
    expect(unbound.port!.fixedIps).toEqual([]);
    expect(unbound.port!.bindingHostId).toBe("");
  });

  it("ports made in a row on a routed network are each deferred, with their own MAC; an immediate one is refused", async () => {
    // The first port teaches the adapter that the network is routed; the next ones take the
    // one-statement path for deferred ports.
    const first = await net.createPort({ networkId, projectId: "p1", name: "row-first" });
    const made = await Promise.all(
      Array.from({ length: 6 }, (_, i) =>
        net.createPort({ networkId, projectId: "p1", name: `row-${i}`, deviceId: `dev-${i}` }),
      ),
    );
    const all = [first.port!, ...made.map((m) => m.port!)];
    for (const p of all) {
      expect(p.ipAllocation).toBe(IpAllocation.DEFERRED);
      expect(p.fixedIps).toEqual([]);
      expect(p.networkId).toBe(networkId);
      expect(p.projectId).toBe("p1");
      expect((await net.getPort({ id: p.id })).port).toMatchObject({ name: p.name, deviceId: p.deviceId });
    }
    expect(new Set(all.map((p) => p.macAddress)).size).toBe(all.length);
    expect(made.map((m) => m.port!.deviceId)).toEqual(made.map((_, i) => `dev-${i}`));
    const immediate = await refusal(
      net.createPort({ networkId, projectId: "p1", ipAllocation: IpAllocation.IMMEDIATE }),
    );
    expect(immediate.kind).toBe("invalid_input");
    expect(immediate.message).toMatch(/routed network/);

    // Their first binds (one statement each when it can): the host's segment gives the address.
    const onB = await net.bindPort({ portId: all[0]!.id, host: "rack2-a" });
    expect(onB.segmentId).toBe(segB);
    expect(onB.port!.bindingHostId).toBe("rack2-a");
    expect(onB.port!.fixedIps.map((f) => f.ipAddress)).toEqual([expect.stringMatching(/^10\.2\.0\./)]);
    const onA = await net.bindPort({ portId: all[1]!.id, host: "rack1-a" });
    expect(onA.segmentId).toBe(segA);
    expect(onA.port!.fixedIps.map((f) => f.ipAddress)).toEqual([expect.stringMatching(/^10\.1\.0\./)]);
    const lonely = await refusal(net.bindPort({ portId: all[2]!.id, host: "lonely" }));
    expect(lonely.kind).toBe("invalid_input");
    const untouched = (await net.getPort({ id: all[2]!.id })).port!;
    expect(untouched.bindingHostId).toBe("");
    expect(untouched.fixedIps).toEqual([]);
    for (const p of all.slice(0, 2)) await net.unbindPort({ portId: p.id });
  });

  it("deferred ports bound together each get their own address from their host's segment; a segment short of addresses serves what it has and refuses the rest", async () => {
    // Shared: a user of p2 sees the network, not p1's ports on it. Segment "small" on rack1 has a
    // /29: without its network, broadcast and gateway addresses, 5 to hand out.
    const {
      networkId: tight,
      segments: [small, big],
    } = await twoRackNetwork(net, "tight", {
      shared: true,
      vlans: [201, 202],
      cidrs: ["10.9.0.0/29", "10.8.0.0/24"],
    });
    const made: string[] = [];
    for (let i = 0; i < 13; i++)
      made.push((await net.createPort({ networkId: tight, projectId: "p1" })).port!.id);
    const hosts = [
      ...Array(7)
        .fill(0)
        .map((_, i) => (i % 2 ? "rack1-a" : "rack1-b")),
      "rack2-a",
      "rack2-a",
      "rack2-a",
      "lonely",
      "rack2-a",
      "rack2-a",
    ];
    // In the same turn: port 11 bound by a user of another project (not theirs to see), port 12
    // by a user of its own project; the others by an admin.
    const caller = (i: number) => (i === 11 ? "p2" : i === 12 ? "p1" : undefined);

    const answers = await Promise.allSettled(
      made.map((portId, i) => {
        const bind = () => net.bindPort({ portId, host: hosts[i]! });
        const project = caller(i);
        return project ? asProject(project, bind) : bind();
      }),
    );

    const bound = answers.flatMap((a, i) => (a.status === "fulfilled" ? [{ i, ...a.value }] : []));
    const ips = bound.flatMap((b) => b.port!.fixedIps.map((f) => f.ipAddress));
    expect(new Set(ips).size).toBe(ips.length);
    const onSmall = bound.filter((b) => b.i < 7);
    expect(onSmall).toHaveLength(5);
    for (const b of onSmall) {
      expect(b.segmentId).toBe(small);
      expect(b.port!.bindingHostId).toBe(hosts[b.i]);
      expect(b.port!.fixedIps.map((f) => f.ipAddress)).toEqual([expect.stringMatching(/^10\.9\.0\.[2-6]$/)]);
    }
    const onBig = bound.filter((b) => b.i >= 7);
    expect(onBig.map((b) => b.i)).toEqual([7, 8, 9, 12]);
    for (const b of onBig) {
      expect(b.segmentId).toBe(big);
      expect(b.port!.fixedIps.map((f) => f.ipAddress)).toEqual([expect.stringMatching(/^10\.8\.0\./)]);
    }
    for (const [i, a] of answers.entries()) {
      if (a.status === "fulfilled") continue;
      const err = await refusal(Promise.reject(a.reason));
      expect(err.kind, `port ${i}`).toBe(
        i === 10 ? "invalid_input" : i === 11 ? "not_found" : "ip_exhausted",
      );
      const left = (await net.getPort({ id: made[i]! })).port!;
      expect(left.bindingHostId).toBe("");
      expect(left.fixedIps).toEqual([]);
    }
    for (const id of made) await net.deletePort({ id });
    await net.deleteNetwork({ id: tight });
  });

  it("deferred ports made in one turn keep each caller's visibility: another project's user is refused, the owner's is served", async () => {
    const { networkId: privateNet } = await twoRackNetwork(net, "private-routed", {
      shared: false,
      vlans: [301, 302],
      cidrs: ["10.7.0.0/28", "10.7.1.0/28"],
    });
    // The first port teaches the adapter the network is routed; the next go together.
    const first = (await net.createPort({ networkId: privateNet, projectId: "p1" })).port!;
    expect(first.ipAllocation).toBe(IpAllocation.DEFERRED);
    const [foreign, own, admin] = await Promise.allSettled([
      asProject("p2", () => net.createPort({ networkId: privateNet, name: "foreign" })),
      asProject("p1", () => net.createPort({ networkId: privateNet, name: "own" })),
      net.createPort({ networkId: privateNet, projectId: "p1", name: "admin" }),
    ]);
    expect(foreign!.status).toBe("rejected");
    expect((await refusal(Promise.reject((foreign as PromiseRejectedResult).reason))).kind).toBe("not_found");
    for (const made of [own!, admin!]) {
      expect(made.status).toBe("fulfilled");
      const port = (
        made as PromiseFulfilledResult<{ port?: { ipAllocation: IpAllocation; projectId: string } }>
      ).value.port!;
      expect(port).toMatchObject({ ipAllocation: IpAllocation.DEFERRED, projectId: "p1" });
    }
    const { ports } = await net.listPorts({ networkId: privateNet });
    expect(ports.map((p) => p.name).sort()).toEqual(["", "admin", "own"]);
    for (const p of ports) await net.deletePort({ id: p.id });
    await net.deleteNetwork({ id: privateNet });
  });

  it("CheckAndUpdatePorts refuses a port bound elsewhere and never allocates; a good port goes ACTIVE with what the driver needs", async () => {
    const server = randomUUID();
    const { port: bound } = await net.createPort({ networkId, projectId: "p1" });
    const { port: unboundPort } = await net.createPort({ networkId, projectId: "p1" });
    for (const p of [bound!, unboundPort!])
      await net.claimPort({ portId: p.id, deviceId: server, deviceOwner: "compute:nova" });
    const { port: onB } = await net.bindPort({ portId: bound!.id, host: "rack2-a" });

    const elsewhere = await refusal(
      net.checkAndUpdatePorts({ serverId: server, host: "rack1-a", portIds: [bound!.id] }),
    );
    expect(elsewhere.message).toContain(`port ${bound!.id} is bound to host rack2-a, not rack1-a`);
    const notBound = await refusal(
      net.checkAndUpdatePorts({ serverId: server, host: "rack1-a", portIds: [unboundPort!.id] }),
    );
    expect(notBound.message).toContain(`port ${unboundPort!.id} is not bound to any host`);
    // Nothing was allocated or changed by the refused checks.
    expect((await net.getPort({ id: unboundPort!.id })).port!.fixedIps).toEqual([]);
    const still = (await net.getPort({ id: bound!.id })).port!;
    expect(still.fixedIps).toEqual(onB!.fixedIps);
    expect(still.status).toBe("DOWN");

    const otherServer = await refusal(
      net.checkAndUpdatePorts({ serverId: randomUUID(), host: "rack2-a", portIds: [bound!.id] }),
    );
    expect(otherServer.kind).toBe("port_in_use");
    expect(otherServer.message).toContain(`port ${bound!.id} belongs to device ${server}`);
    const missing = randomUUID();
    const gone = await refusal(
      net.checkAndUpdatePorts({ serverId: server, host: "rack2-a", portIds: [missing] }),
    );
    expect(gone.kind).toBe("not_found");
    expect(gone.message).toContain(`port ${missing} does not exist`);
    // A good port asked for with a bad one: all or nothing, the good one is not made ACTIVE.
    const mixed = await refusal(
      net.checkAndUpdatePorts({ serverId: server, host: "rack2-a", portIds: [bound!.id, unboundPort!.id] }),
    );
    expect(mixed.message).toContain(`port ${unboundPort!.id} is not bound to any host`);
    expect(mixed.message).not.toContain(`port ${bound!.id}`);
    expect((await net.getPort({ id: bound!.id })).port!.status).toBe("DOWN");

    const { ports } = await net.checkAndUpdatePorts({
      serverId: server,
      host: "rack2-a",
      portIds: [bound!.id],
    });
    expect(ports).toHaveLength(1);
    expect(ports[0]).toMatchObject({
      portId: bound!.id,
      macAddress: bound!.macAddress,
      networkId,
      segmentId: segB,
      networkType: "vlan",
      physicalNetwork: "physnet-rack2",
      segmentationId: 102,
      vifType: "ovs",
    });
    expect(ports[0]!.fixedIps.map((f) => f.ipAddress)).toEqual(onB!.fixedIps.map((f) => f.ipAddress));
    expect((await net.getPort({ id: bound!.id })).port!.status).toBe("ACTIVE");
  });

  it("CheckAndUpdatePorts of many servers at once: each call is checked and answered on its own", async () => {
    // Sent together, the calls reach the adapter in the same turn and share one statement; a
    // refused call must not refuse its neighbours nor take their ports, nor they its.
    const servers = await Promise.all(
      Array.from({ length: 8 }, async (_, i) => {
        const server = randomUUID();
        const host = i % 2 ? "rack1-a" : "rack2-a";
        const portIds: string[] = [];
        for (let j = 0; j < 2; j++) {
          const { port } = await net.createPort({ networkId, projectId: "p1" });
          await net.claimPort({ portId: port!.id, deviceId: server, deviceOwner: "compute:nova" });
          await net.bindPort({ portId: port!.id, host });
          portIds.push(port!.id);
        }
        // Servers 2 and 5 are checked on the wrong host; server 6 also names a port it lacks.
        const askedHost = i === 2 || i === 5 ? "rack1-b" : host;
        const missing = i === 6 ? randomUUID() : undefined;
        return { server, host: askedHost, portIds, missing };
      }),
    );
    const answers = await Promise.allSettled(
      servers.map((s) =>
        net.checkAndUpdatePorts({
          serverId: s.server,
          host: s.host,
          portIds: s.missing ? [...s.portIds, s.missing] : s.portIds,
        }),
      ),
    );
    for (const [i, s] of servers.entries()) {
      const answer = answers[i]!;
      const refused = i === 2 || i === 5 || i === 6;
      expect(answer.status, `server ${i}`).toBe(refused ? "rejected" : "fulfilled");
      if (answer.status === "fulfilled") {
        expect(answer.value.ports.map((p) => p.portId)).toEqual(s.portIds);
      } else {
        const err = await refusal(Promise.reject(answer.reason));
        const expected = s.missing ? `port ${s.missing} does not exist` : `is bound to host`;
        expect(err.message).toContain(expected);
        for (const other of servers.filter((o) => o !== s)) {
          for (const id of other.portIds) expect(err.message).not.toContain(id);
        }
      }
      for (const id of s.portIds) {
        expect((await net.getPort({ id })).port!.status, `server ${i} port ${id}`).toBe(
          refused ? "DOWN" : "ACTIVE",
        );
      }
    }
  });

  it("claiming a port used by another device is refused with port_in_use", async () => {
    const { port } = await net.createPort({ networkId, projectId: "p1" });
    await net.claimPort({ portId: port!.id, deviceId: "server-1" });
    await net.claimPort({ portId: port!.id, deviceId: "server-1" }); // idempotent
    const err = await refusal(net.claimPort({ portId: port!.id, deviceId: "server-2" }));
    expect(err.kind).toBe("port_in_use");
    expect(err.message).toBe(`Port ${port!.id} is still in use by device server-1.`);
    expect((await net.getPort({ id: port!.id })).port!.deviceId).toBe("server-1");
    // A server of another project cannot take a free port of p1.
    const { port: free } = await net.createPort({ networkId, projectId: "p1" });
    const foreign = await refusal(net.claimPort({ portId: free!.id, deviceId: "server-3", projectId: "p2" }));
    expect(foreign.kind).toBe("forbidden");
    expect((await net.getPort({ id: free!.id })).port!.deviceId).toBe("");
  });

  it("segment providers carry IPV4_ADDRESS = allocatable addresses, the sharing trait and their aggregate on the mapped hosts", async () => {
    const inventory = async (seg: string) => {
      const inv = await placement.getInventories({ providerUuid: seg });
      const ip = inv.inventories.find((i) => i.resourceClass === "IPV4_ADDRESS");
      return ip ? Number(ip.total) - Number(ip.reserved) : 0;
    };
    expect(await inventory(segA)).toBe(253);
    expect((await placement.getResourceProvider({ uuid: segA })).provider!.name).toBe(`segment-${segA}`);
    expect((await placement.getTraits({ providerUuid: segA })).traits).toContain("MISC_SHARES_VIA_AGGREGATE");
    expect((await placement.getAggregates({ providerUuid: segA })).aggregateUuids).toEqual([segA]);
    expect((await placement.getAggregates({ providerUuid: cn["rack1-a"]! })).aggregateUuids).toEqual([segA]);
    expect((await placement.getAggregates({ providerUuid: cn["rack1-b"]! })).aggregateUuids).toEqual([segA]);
    expect((await placement.getAggregates({ providerUuid: cn["rack2-a"]! })).aggregateUuids).toEqual([segB]);
    expect((await placement.getAggregates({ providerUuid: cn.lonely! })).aggregateUuids).toEqual([]);

    // A second subnet on segment A adds its pool (a /28 with a gateway: 13 addresses) ...
    const { subnet } = await net.createSubnet({ networkId, segmentId: segA, cidr: "10.1.1.0/28" });
    expect(await inventory(segA)).toBe(253 + 13);
    // ... a pool edit changes it ...
    await net.updateSubnet({
      id: subnet!.id,
      updateAllocationPools: true,
      allocationPools: [{ start: "10.1.1.2", end: "10.1.1.5" }],
    });
    expect(await inventory(segA)).toBe(253 + 4);
    // ... and deleting the subnet takes it away again.
    await net.deleteSubnet({ id: subnet!.id });
    expect(await inventory(segA)).toBe(253);
  });

  it("a segment made while placement is down is put into placement once it is back", async () => {
    const { network } = await net.createNetwork({
      name: "late",
      segments: [{ networkType: "flat", physicalNetwork: "physnet-rack1" }],
    });
    const seg = network!.segments[0]!.id;
    await mesh.stop("scheduler");
    try {
      // The RPC succeeds although placement is unreachable.
      const { subnet } = await net.createSubnet({
        networkId: network!.id,
        segmentId: seg,
        cidr: "10.9.0.0/26",
      });
      expect(subnet!.segmentId).toBe(seg);
    } finally {
      await mesh.restart("scheduler");
    }
    placement = serviceClient(PlacementService, mesh.url("scheduler"));
    await eventually(async () => {
      const inv = await placement.getInventories({ providerUuid: seg });
      expect(inv.inventories.map((i) => [i.resourceClass, Number(i.total)])).toEqual([["IPV4_ADDRESS", 61]]);
      expect((await placement.getAggregates({ providerUuid: cn["rack1-a"]! })).aggregateUuids.sort()).toEqual(
        [segA, seg].sort(),
      );
    }, 40_000);

    // Its last subnet gone, the segment's provider and its aggregate on the hosts go too.
    const [only] = (await net.listSubnets({ segmentId: seg })).subnets;
    await net.deleteSubnet({ id: only!.id });
    await eventually(async () => {
      expect((await refusal(placement.getResourceProvider({ uuid: seg }))).kind).toBe("not_found");
      expect((await placement.getAggregates({ providerUuid: cn["rack1-a"]! })).aggregateUuids).toEqual([
        segA,
      ]);
    });
  });

  it("drift is repaired at start-up: a segment provider deleted behind the adapter's back comes back", async () => {
    await mesh.stop("network-adapter");
    await placement.deleteResourceProvider({ uuid: segA });
    await placement.setAggregates({
      providerUuid: cn["rack1-a"]!,
      providerGeneration: (await placement.getAggregates({ providerUuid: cn["rack1-a"]! }))
        .providerGeneration,
      aggregateUuids: ["0b7a8f0e-0000-4000-8000-000000000001"],
    });
    await mesh.restart("network-adapter");
    net = serviceClient(NetworkService, mesh.url("network-adapter"));
    await eventually(async () => {
      const inv = await placement.getInventories({ providerUuid: segA });
      expect(inv.inventories.map((i) => [i.resourceClass, Number(i.total) - Number(i.reserved)])).toEqual([
        ["IPV4_ADDRESS", 253],
      ]);
      expect((await placement.getTraits({ providerUuid: segA })).traits).toContain(
        "MISC_SHARES_VIA_AGGREGATE",
      );
      // Ours is back; an aggregate that is not ours is left alone.
      expect((await placement.getAggregates({ providerUuid: cn["rack1-a"]! })).aggregateUuids.sort()).toEqual(
        ["0b7a8f0e-0000-4000-8000-000000000001", segA].sort(),
      );
    }, 40_000);
  });

  it("a host that reports other physical networks moves to the other segment's aggregate", async () => {
    await net.reportHostPhysicalNetworks({
      host: "rack1-b",
      physicalNetworks: ["physnet-rack2"],
      computeNodeUuid: cn["rack1-b"]!,
    });
    expect((await net.listHostSegments({ host: "rack1-b" })).mappings.map((m) => m.segmentId)).toEqual([
      segB,
    ]);
    await eventually(async () => {
      expect((await placement.getAggregates({ providerUuid: cn["rack1-b"]! })).aggregateUuids).toEqual([
        segB,
      ]);
    });
    const { port } = await net.createPort({ networkId, projectId: "p1" });
    expect((await net.bindPort({ portId: port!.id, host: "rack1-b" })).segmentId).toBe(segB);
  });
});
