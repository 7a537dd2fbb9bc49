// Crash safety with every service running: the conductor is SIGKILLed in the middle of 50 builds
// on a routed network (ports created, bound, hosts failing their first spawn) and restarted;
// every server ends ACTIVE or ERROR, no leaked claim and no leaked port, and the mesh audit finds nothing.
import { NetworkMode } from "@stratus/contracts/compute/v1";
import { NetworkService } from "@stratus/contracts/network/v1";
import { serviceClient } from "@stratus/runtime";
import { type Mesh, startMesh } from "@stratus/runtime/testing";
import { afterAll, expect, it } from "vitest";
import { activatedAfter, allocationsOf, as, clients, until, waitAll } from "./helpers.js";

let mesh: Mesh;
afterAll(async () => {
  await mesh?.close();
});

it("conductor killed mid 50 routed builds and restarted: all ACTIVE or ERROR, no leaked claim or port", async () => {
  mesh = await startMesh({
    services: ["scheduler", "network-adapter", "conductor", "compute-agent"],
    serviceEnv: {
      conductor: {
        QUOTA_INSTANCES: "500",
        QUOTA_CORES: "500",
        QUOTA_RAM_MB: "10000000",
        BUILD_SWEEP_MS: "500",
        AUDIT_GRACE_S: "0",
      },
      "compute-agent": {
        COMPUTE_HOSTS: "rack1-[1-4],rack2-[1-4]",
        COMPUTE_PHYSNETS: "rack1-*=physnet-rack1,rack2-*=physnet-rack2",
        SPAWN_DELAY_MS: "300",
      },
    },
  });
  const { conductor, placement } = clients(mesh.url("conductor"), mesh.url("scheduler"));
  const net = serviceClient(NetworkService, mesh.url("network-adapter"));
  const { network } = await net.createNetwork({
    name: "routed",
    projectId: "admin",
    shared: true,
    segments: [
      { name: "rack1", networkType: "vlan", physicalNetwork: "physnet-rack1", segmentationId: 201 },
      { name: "rack2", networkType: "vlan", physicalNetwork: "physnet-rack2", segmentationId: 202 },
    ],
  });
  const seg = Object.fromEntries(network!.segments.map((s) => [s.name, s.id]));
  await net.createSubnet({ networkId: network!.id, segmentId: seg.rack1!, cidr: "10.21.0.0/24" });
  await net.createSubnet({ networkId: network!.id, segmentId: seg.rack2!, cidr: "10.22.0.0/24" });
  await until("hosts in segments", async () => (await net.listHostSegments({})).mappings.length >= 8, 90_000);

  const res = await as("crash", () =>
    conductor.createServers({
      name: "c",
      flavorId: "1",
      minCount: 50,
      maxCount: 50,
      networkMode: NetworkMode.LIST,
      networks: [{ networkId: network!.id }],
      metadata: { fake_fail_attempts: "1" },
    }),
  );
  const ids = res.servers.map((s) => s.id);
  expect(ids).toHaveLength(50);
  // Killed once builds are under way: some have their host (and port bound) on record.
  await until(
    "5 builds on their hosts",
    async () => {
      const listed = await as("crash", () => conductor.listServers({ reservationId: res.reservationId }));
      return listed.servers.filter((s) => s.host).length >= 5;
    },
    60_000,
    20,
  );
  await mesh.stop("conductor", "SIGKILL");
  const killedAt = new Date();
  await mesh.restart("conductor");

  const servers = await waitAll(conductor, ids, 240_000);
  // The kill landed mid-build: builds still in BUILD then were finished by the restarted one.
  expect(activatedAfter(servers, killedAt).length).toBeGreaterThan(0);
  let active = 0;
  for (const s of servers) {
    expect(["ACTIVE", "ERROR"]).toContain(s.status);
    const alloc = await allocationsOf(placement, s.id);
    const ports = (await net.listPorts({ deviceId: s.id })).ports;
    if (s.status === "ACTIVE") {
      active++;
      expect(alloc.length).toBe(2);
      expect(ports).toHaveLength(1);
      expect(ports[0]!.bindingHostId).toBe(s.host);
      expect(s.addresses.map((a) => a.portId)).toEqual([ports[0]!.id]);
    } else {
      expect(alloc).toEqual([]);
      expect(ports).toEqual([]);
    }
  }
  // Nothing held by anyone else: every port on the network and every address claim is an ACTIVE server's.
  const all = (await net.listPorts({ networkId: network!.id })).ports;
  expect(all).toHaveLength(active);
  let ipsUsed = 0n;
  for (const id of [seg.rack1!, seg.rack2!]) {
    ipsUsed += (await placement.getUsages({ providerUuid: id })).usages.IPV4_ADDRESS ?? 0n;
  }
  expect(ipsUsed).toBe(BigInt(active));
  expect(active).toBe(50);
  // And the audit (docs/audit.md) agrees: nothing orphaned, duplicated or mismatched.
  const { findings } = await conductor.auditMesh({});
  expect(findings.map((f) => `${f.kind} ${f.subject}: ${f.detail}`)).toEqual([]);
}, 600_000);
