// One agent process stands in for 200 hosts: each registers its compute node in placement with
// the configured inventory and answers builds.
import { randomUUID } from "node:crypto";
import { PlacementService } from "@stratus/contracts/scheduler/v1/placement";
import { serviceClient } from "@stratus/runtime";
import { type Mesh, startMesh } from "@stratus/runtime/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { computeNodeUuid } from "../../services/compute-agent/src/hosts/compute-node.js";
import { type AgentClient, agentClient, Recorder, waitUntil } from "./helpers.js";

describe("200 simulated hosts in one agent", () => {
  let mesh: Mesh;
  let agent: AgentClient;
  let rec: Recorder;

  beforeAll(async () => {
    mesh = await startMesh({
      services: ["scheduler", "network-adapter", "compute-agent"],
      serviceEnv: {
        "compute-agent": {
          COMPUTE_HOSTS: "sim-[1-100],sim2-[1-100]",
          COMPUTE_PHYSNETS: "sim-*=physnet-a",
          COMPUTE_VCPUS: "32",
        },
      },
    });
    agent = agentClient(mesh.url("compute-agent"));
    rec = await Recorder.start(mesh.nats);
  });
  afterAll(async () => {
    await rec?.close();
    await mesh?.close();
  });

  it("registers all 200 compute nodes in placement", async () => {
    const hosts = await waitUntil(
      "200 hosts in placement",
      async () => {
        const { hosts } = await agent.listHosts({});
        return hosts.every((h) => h.placementRegistered) ? hosts : undefined;
      },
      120_000,
    );
    expect(hosts).toHaveLength(200);
    expect(hosts.filter((h) => h.physicalNetworks.includes("physnet-a"))).toHaveLength(100);
    const placement = serviceClient(PlacementService, mesh.url("scheduler"));
    const { providers } = await placement.listResourceProviders({});
    const names = new Map(providers.map((p) => [p.uuid, p.name]));
    for (const h of hosts) expect(names.get(computeNodeUuid(h.name))).toBe(h.name);
    // Each one is usable: placement finds 200 hosts with room for a 32-VCPU x4 request.
    const roomy = await placement.listResourceProviders({ resources: { VCPU: 128n } });
    expect(roomy.providers.filter((p) => names.get(p.uuid)?.startsWith("sim"))).toHaveLength(200);
  }, 180_000);

  it("builds on any of its hosts", async () => {
    const ids = ["sim-1", "sim-100", "sim2-57"].map((host) => ({ host, serverId: randomUUID() }));
    for (const b of ids) await rec.build(b);
    for (const b of ids) expect(await rec.result(b.serverId)).toMatchObject({ success: true, host: b.host });
  });
});
