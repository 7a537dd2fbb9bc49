// The whole build flow on a routed network with every service running as a process (scheduler,
// network-adapter, conductor, compute-agent) over real NATS: the conductor allocates ports first,
// schedules with the ports' segment constraints, binds, and the compute agent only checks ports.
import { randomUUID } from "node:crypto";
import { fromBinary } from "@bufbuild/protobuf";
import { NetworkMode, type Server } from "@stratus/contracts/compute/v1";
import { PortChange, PortChangedSchema } from "@stratus/contracts/events/v1";
import { NetworkService, type Port } from "@stratus/contracts/network/v1";
import { serviceClient } from "@stratus/runtime";
import { type Mesh, startMesh } from "@stratus/runtime/testing";
import type { NatsConnection } from "nats";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createAutoPrerequisites } from "../support/network-fixtures.js";
import {
  allocationsOf,
  as,
  type ConductorClient,
  clients,
  type PlacementClient,
  until,
  waitAll,
  waitSettled,
} from "./helpers.js";

type NetworkClient = ReturnType<typeof serviceClient<typeof NetworkService>>;

let mesh: Mesh;
let conductor: ConductorClient;
let placement: PlacementClient;
let net: NetworkClient;
let nc: NatsConnection;
const portEvents: { subject: string; change: PortChange; portId: string; deviceId: string; host: string }[] =
  [];
let routed = "";
const seg: Record<string, string> = {};
let small = "";

const HOSTS = ["rack1-1", "rack1-2", "rack1-3", "rack2-1", "rack2-2", "rack2-3", "rack3-1", "rack3-2"];

beforeAll(async () => {
  mesh = await startMesh({
    services: ["scheduler", "network-adapter", "conductor", "compute-agent"],
    serviceEnv: {
      conductor: { QUOTA_INSTANCES: "200", QUOTA_CORES: "200", QUOTA_RAM_MB: "1000000" },
      "compute-agent": {
        COMPUTE_HOSTS: "rack1-[1-3],rack2-[1-3],rack3-[1-2]",
        COMPUTE_PHYSNETS: "rack1-*=physnet-rack1,rack2-*=physnet-rack2,rack3-*=physnet-rack3",
        SPAWN_DELAY_MS: "0",
      },
    },
  });
  ({ conductor, placement } = clients(mesh.url("conductor"), mesh.url("scheduler")));
  net = serviceClient(NetworkService, mesh.url("network-adapter"));
  nc = await mesh.nats.connect("tools");
  const sub = nc.subscribe("stratus.port.>");
  void (async () => {
    for await (const m of sub) {
      const e = fromBinary(PortChangedSchema, m.data);
      portEvents.push({
        subject: m.subject,
        change: e.change,
        portId: e.portId,
        deviceId: e.deviceId,
        host: e.host,
      });
    }
  })();

  // Every host registered and mapped to its rack's segment (the agent reports at start).
  await until(
    "hosts registered",
    async () => {
      const rps = (await placement.listResourceProviders({})).providers.map((p) => p.name);
      return HOSTS.every((h) => rps.includes(h));
    },
    60_000,
  );

  const { network } = await net.createNetwork({
    name: "routed",
    projectId: "admin",
    shared: true,
    segments: [
      { name: "rack1", networkType: "vlan", physicalNetwork: "physnet-rack1", segmentationId: 101 },
      { name: "rack2", networkType: "vlan", physicalNetwork: "physnet-rack2", segmentationId: 102 },
    ],
  });
  routed = network!.id;
  for (const s of network!.segments) seg[s.name] = s.id;
  await net.createSubnet({ networkId: routed, segmentId: seg.rack1!, cidr: "10.1.0.0/24" });
  await net.createSubnet({ networkId: routed, segmentId: seg.rack2!, cidr: "10.2.0.0/24" });

  // A segment with exactly 5 addresses to give (rack3's two hosts).
  const tiny = await net.createNetwork({
    name: "small",
    projectId: "admin",
    shared: true,
    segments: [{ name: "rack3", networkType: "vlan", physicalNetwork: "physnet-rack3", segmentationId: 103 }],
  });
  small = tiny.network!.id;
  await net.createSubnet({
    networkId: small,
    segmentId: tiny.network!.segments[0]!.id,
    cidr: "10.3.0.0/24",
    allocationPools: [{ start: "10.3.0.10", end: "10.3.0.14" }],
  });
  for (const host of HOSTS.filter((h) => h.startsWith("rack1") || h.startsWith("rack2"))) {
    await until(
      "host mapped",
      async () => (await net.listHostSegments({ host })).mappings.length > 0,
      30_000,
    );
  }
}, 240_000);
afterAll(async () => {
  await nc?.close();
  await mesh?.close();
});

const boot = (
  project: string,
  networks: { networkId?: string; portId?: string }[],
  metadata: Record<string, string> = {},
) =>
  as(project, () =>
    conductor.createServers({
      name: "r",
      flavorId: "1",
      imageRef: "cirros",
      networkMode: NetworkMode.LIST,
      networks: networks.map((n) => ({ networkId: n.networkId ?? "", portId: n.portId ?? "" })),
      metadata,
    }),
  );

async function subnetOf(ip: string): Promise<string> {
  return ip.split(".").slice(0, 3).join(".");
}

const rackOf = (host: string) => host.split("-")[0]!;
const expectedPrefix: Record<string, string> = { rack1: "10.1.0", rack2: "10.2.0", rack3: "10.3.0" };

async function portsOf(serverId: string): Promise<Port[]> {
  return (await net.listPorts({ deviceId: serverId })).ports;
}

describe("build on a routed network", () => {
  it("boots ACTIVE on a host whose segment's subnet holds the server's IP", async () => {
    const res = await boot("p-routed", [{ networkId: routed }]);
    const s = await waitSettled(conductor, res.servers[0]!.id);
    expect(s.status).toBe("ACTIVE");
    expect(s.addresses).toHaveLength(1);
    const a = s.addresses[0]!;
    expect(a.networkId).toBe(routed);
    expect(a.networkName).toBe("routed");
    expect(await subnetOf(a.ipAddress)).toBe(expectedPrefix[rackOf(s.host)]);
    const ports = await portsOf(s.id);
    expect(ports.map((p) => p.id)).toEqual([a.portId]);
    expect(ports[0]!.bindingHostId).toBe(s.host);
    // The IP is a placement claim on the host's segment too.
    const alloc = await allocationsOf(placement, s.id);
    const ipClaim = alloc.find((x) => x.resources.IPV4_ADDRESS !== undefined);
    expect(ipClaim?.providerUuid).toBe(seg[rackOf(s.host)]);
    // Every step of the build is an event the user can read back, in order.
    const [action] = (await as("p-routed", () => conductor.listInstanceActions({ serverId: s.id }))).actions;
    const events = (
      await as("p-routed", () =>
        conductor.getInstanceAction({ serverId: s.id, requestId: action!.requestId }),
      )
    ).action!.events;
    expect(events.map((e) => [e.event, e.result])).toEqual([
      ["conductor_allocate_networks", "Success"],
      ["conductor_schedule_instances", "Success"],
      ["conductor_bind_ports", "Success"],
      ["compute_build_and_run_instance", "Success"],
    ]);
  });

  it("the first host fails: ACTIVE on an alternate with the same port, created once", async () => {
    const res = await boot("p-resched", [{ networkId: routed }], { fake_fail_attempts: "1" });
    const s = await waitSettled(conductor, res.servers[0]!.id);
    expect(s.status).toBe("ACTIVE");
    const created = portEvents.filter((e) => e.change === PortChange.CREATED && e.deviceId === s.id);
    expect(created).toHaveLength(1);
    const bound = portEvents.filter((e) => e.change === PortChange.BOUND && e.portId === created[0]!.portId);
    expect(bound.length).toBe(2);
    expect(bound[0]!.host).not.toBe(bound[1]!.host);
    expect(bound[1]!.host).toBe(s.host);
    expect(s.addresses.map((a) => a.portId)).toEqual([created[0]!.portId]);
    expect(await subnetOf(s.addresses[0]!.ipAddress)).toBe(expectedPrefix[rackOf(s.host)]);
    const alloc = await allocationsOf(placement, s.id);
    expect(alloc.map((x) => x.providerUuid)).toContain(seg[rackOf(s.host)]);
    expect(alloc).toHaveLength(2);
  });

  it("every attempt fails: ERROR with a fault, no allocation, conductor port deleted, user port unbound and kept", async () => {
    const { port: userPort } = await net.createPort({ networkId: routed, projectId: "p-fail" });
    const [withUserPort, withNetwork] = await Promise.all([
      boot("p-fail", [{ portId: userPort!.id }], { fake_fail_spawn: "always" }),
      boot("p-fail", [{ networkId: routed }], { fake_fail_spawn: "always" }),
    ]);
    const servers = await waitAll(conductor, [withUserPort.servers[0]!.id, withNetwork.servers[0]!.id]);
    for (const s of servers) {
      expect(s.status).toBe("ERROR");
      expect(s.fault?.message).toMatch(/Exceeded maximum number of retries/);
      expect(await allocationsOf(placement, s.id)).toEqual([]);
    }
    const kept = (await net.getPort({ id: userPort!.id })).port!;
    expect(kept.deviceId).toBe("");
    expect(kept.bindingHostId).toBe("");
    expect(kept.fixedIps).toEqual([]);
    expect(await portsOf(servers[1]!.id)).toEqual([]);
    const made = portEvents.filter((e) => e.change === PortChange.CREATED && e.deviceId === servers[1]!.id);
    expect(made).toHaveLength(1);
    expect(portEvents.some((e) => e.change === PortChange.DELETED && e.portId === made[0]!.portId)).toBe(
      true,
    );
  });

  it("a segment with 5 free addresses and 8 requests: 5 ACTIVE there, 3 NoValidHost, no duplicate IP", async () => {
    const res = await Promise.all(Array.from({ length: 8 }, () => boot("p-small", [{ networkId: small }])));
    const servers = await waitAll(
      conductor,
      res.map((r) => r.servers[0]!.id),
    );
    const active = servers.filter((s) => s.status === "ACTIVE");
    const failed = servers.filter((s) => s.status === "ERROR");
    expect(active).toHaveLength(5);
    expect(failed).toHaveLength(3);
    for (const s of active) expect(rackOf(s.host)).toBe("rack3");
    const ips = active.map((s) => s.addresses[0]!.ipAddress);
    expect(new Set(ips).size).toBe(5);
    for (const ip of ips) expect(ip.startsWith("10.3.0.1")).toBe(true);
    for (const s of failed) {
      expect(s.fault?.message).toMatch(/No valid host was found/);
      expect(await portsOf(s.id)).toEqual([]);
      expect(await allocationsOf(placement, s.id)).toEqual([]);
    }
  });

  it("a user port and a conductor port reach the compute agent in the same shape", async () => {
    const { port: userPort } = await net.createPort({ networkId: routed, projectId: "p-shape" });
    const res = await boot("p-shape", [{ portId: userPort!.id }, { networkId: routed }]);
    const s = await waitSettled(conductor, res.servers[0]!.id);
    expect(`${s.status} ${s.fault?.message ?? ""}`).toBe("ACTIVE ");
    const ports = await portsOf(s.id);
    expect(ports).toHaveLength(2);
    const shape = (p: Port) => ({
      deviceId: p.deviceId,
      deviceOwner: p.deviceOwner,
      bindingHostId: p.bindingHostId,
      bindingVifType: p.bindingVifType,
      bindingVifDetails: p.bindingVifDetails,
      status: p.status,
      networkId: p.networkId,
      projectId: p.projectId,
      addresses: p.fixedIps.length,
    });
    const [a, b] = ports.map(shape);
    expect(a).toEqual(b);
    expect(a!.deviceId).toBe(s.id);
    expect(a!.bindingHostId).toBe(s.host);
    expect(s.addresses.map((x) => x.portId).sort()).toEqual(ports.map((p) => p.id).sort());
    // Delete: the conductor's port goes, the user's stays, unbound.
    await as("p-shape", () => conductor.deleteServer({ id: s.id }));
    expect((await waitSettled(conductor, s.id)).status).toBe("DELETED");
    const left = await net.getPort({ id: userPort!.id });
    expect(left.port!.deviceId).toBe("");
    expect(await portsOf(s.id)).toEqual([]);
    expect(await allocationsOf(placement, s.id)).toEqual([]);
  });

  it("a port already in use by another device is refused: ERROR, and that port is left alone", async () => {
    const { port } = await net.createPort({ networkId: routed, projectId: "p-used", deviceId: randomUUID() });
    const res = await boot("p-used", [{ portId: port!.id }]);
    const s: Server = await waitSettled(conductor, res.servers[0]!.id);
    expect(s.status).toBe("ERROR");
    expect(s.fault?.message).toMatch(/in use/);
    expect((await net.getPort({ id: port!.id })).port!.deviceId).toBe(port!.deviceId);
  });

  it("networks: auto makes the project's topology once and boots on it", async () => {
    await createAutoPrerequisites(net);
    const auto = (n: number) =>
      as("p-auto", () =>
        conductor.createServers({
          name: "a",
          flavorId: "1",
          networkMode: NetworkMode.AUTO,
          minCount: n,
          maxCount: n,
        }),
      );
    const servers = await waitAll(
      conductor,
      (await auto(2)).servers.map((x) => x.id),
    );
    for (const s of servers) {
      expect(`${s.status} ${s.fault?.message ?? ""}`).toBe("ACTIVE ");
      expect(s.addresses).toHaveLength(1);
      expect(s.addresses[0]!.ipAddress.startsWith("10.128.")).toBe(true);
    }
    expect(servers[0]!.addresses[0]!.networkId).toBe(servers[1]!.addresses[0]!.networkId);
    const topo = await net.getAutoAllocatedTopology({ projectId: "p-auto" });
    expect(topo.networkId).toBe(servers[0]!.addresses[0]!.networkId);
  });
});
