// The compute agent with the real network-adapter: hosts report their physical networks (after
// their compute node is in placement, so the adapter can add the segment aggregates to it), and
// a build verifies its ports with CheckAndUpdatePorts only: a port bound here goes ACTIVE and is
// announced by VifPlugged; a port bound elsewhere fails the build naming it, and nothing runs.
import { randomUUID } from "node:crypto";
import { NetworkService } from "@stratus/contracts/network/v1";
import { PlacementService } from "@stratus/contracts/scheduler/v1/placement";
import { serviceClient } from "@stratus/runtime";
import { type Mesh, startMesh } from "@stratus/runtime/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { computeNodeUuid } from "../../services/compute-agent/src/hosts/compute-node.js";
import { type AgentClient, agentClient, Recorder, waitUntil } from "./helpers.js";

describe("compute agent and the network-adapter", () => {
  let mesh: Mesh;
  let agent: AgentClient;
  let net: ReturnType<typeof serviceClient<typeof NetworkService>>;
  let placement: ReturnType<typeof serviceClient<typeof PlacementService>>;
  let rec: Recorder;
  let networkId = "";
  let segA = "";
  let segB = "";

  beforeAll(async () => {
    mesh = await startMesh({
      services: ["scheduler", "network-adapter", "compute-agent"],
      serviceEnv: {
        "compute-agent": {
          COMPUTE_HOSTS: "rack1-[1-2],rack2-1,lonely-1",
          COMPUTE_PHYSNETS: "rack1-*=physnet-rack1,rack2-*=physnet-rack2",
        },
      },
    });
    agent = agentClient(mesh.url("compute-agent"));
    net = serviceClient(NetworkService, mesh.url("network-adapter"));
    placement = serviceClient(PlacementService, mesh.url("scheduler"));
    rec = await Recorder.start(mesh.nats);
    const { network } = await net.createNetwork({
      name: "routed",
      projectId: "p1",
      shared: true,
      segments: [
        { name: "rack1", networkType: "vlan", physicalNetwork: "physnet-rack1", segmentationId: 101 },
        { name: "rack2", networkType: "vlan", physicalNetwork: "physnet-rack2", segmentationId: 102 },
      ],
    });
    networkId = network?.id ?? "";
    segA = network?.segments.find((s) => s.name === "rack1")?.id ?? "";
    segB = network?.segments.find((s) => s.name === "rack2")?.id ?? "";
    await net.createSubnet({ networkId, segmentId: segA, cidr: "10.1.0.0/24" });
    await net.createSubnet({ networkId, segmentId: segB, cidr: "10.2.0.0/24" });
  });
  afterAll(async () => {
    await rec?.close();
    await mesh?.close();
  });

  it("reports every host's physical networks, mapping hosts to segments and segment aggregates", async () => {
    await waitUntil("physnets reported", async () =>
      (await agent.listHosts({})).hosts.every((h) => h.placementRegistered && h.physicalNetworksReported),
    );
    const segmentsOf = async (host: string) =>
      (await net.listHostSegments({ host })).mappings.map((m) => m.segmentId);
    expect(await segmentsOf("rack1-1")).toEqual([segA]);
    expect(await segmentsOf("rack1-2")).toEqual([segA]);
    expect(await segmentsOf("rack2-1")).toEqual([segB]);
    expect(await segmentsOf("lonely-1")).toEqual([]);
    await waitUntil("segment aggregates on compute nodes", async () => {
      const aggs = await placement.getAggregates({ providerUuid: computeNodeUuid("rack1-1") });
      return aggs.aggregateUuids.includes(segA) ? true : undefined;
    });
    const lonely = await placement.getAggregates({ providerUuid: computeNodeUuid("lonely-1") });
    expect(lonely.aggregateUuids).toEqual([]);
  });

  it("a build with ports bound to its host checks them, runs, and plugs each vif", async () => {
    const serverId = randomUUID();
    const ports: string[] = [];
    for (let i = 0; i < 2; i++) {
      const { port } = await net.createPort({ networkId, projectId: "p1", deviceId: serverId });
      await net.bindPort({ portId: port?.id ?? "", host: "rack1-2" });
      ports.push(port?.id ?? "");
    }
    await rec.build({ serverId, host: "rack1-2", portIds: ports });
    expect(await rec.result(serverId)).toMatchObject({ success: true, host: "rack1-2" });
    // VifPlugged goes out before the result, on another subject: give the listener a moment.
    const vifs = await waitUntil("two vifs plugged", () => {
      const v = rec.vifs.filter((x) => x.serverId === serverId);
      return v.length >= 2 ? v : undefined;
    });
    expect(vifs.map((v) => v.portId).sort()).toEqual([...ports].sort());
    expect(vifs.every((v) => v.host === "rack1-2")).toBe(true);
    for (const id of ports) expect((await net.getPort({ id })).port?.status).toBe("ACTIVE");
    const { instances } = await agent.listInstances({ serverId });
    expect(instances.map((i) => [i.host, [...i.portIds].sort()])).toEqual([["rack1-2", [...ports].sort()]]);
  });

  it("a port not bound to the host fails the build naming the port; nothing runs", async () => {
    const serverId = randomUUID();
    const { port } = await net.createPort({ networkId, projectId: "p1", deviceId: serverId });
    const portId = port?.id ?? "";
    const bound = await net.bindPort({ portId, host: "rack2-1" });
    const ip = bound.port?.fixedIps[0]?.ipAddress;
    await rec.build({ serverId, host: "rack1-1", portIds: [portId] });
    const r = await rec.result(serverId);
    expect(r).toMatchObject({ success: false, host: "rack1-1", retryable: true });
    expect(r.error).toContain(portId);
    expect(r.error).toContain("rack2-1");
    expect((await agent.listInstances({ serverId })).instances).toEqual([]);
    expect(rec.vifs.filter((v) => v.serverId === serverId)).toEqual([]);
    // The agent changed nothing about the port: same binding, same address, not active.
    const after = (await net.getPort({ id: portId })).port;
    expect(after?.bindingHostId).toBe("rack2-1");
    expect(after?.fixedIps.map((f) => f.ipAddress)).toEqual([ip]);
    expect(after?.status).not.toBe("ACTIVE");
  });

  it("a port that belongs to another server fails the build, not retryable", async () => {
    const serverId = randomUUID();
    const { port } = await net.createPort({ networkId, projectId: "p1", deviceId: randomUUID() });
    const portId = port?.id ?? "";
    await net.bindPort({ portId, host: "rack1-1" });
    await rec.build({ serverId, host: "rack1-1", portIds: [portId] });
    const r = await rec.result(serverId);
    expect(r).toMatchObject({ success: false, retryable: false });
    expect(r.error).toContain(portId);
    expect((await agent.listInstances({ serverId })).instances).toEqual([]);
  });
});
