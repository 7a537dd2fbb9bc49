// The compute agent as a process on real NATS with the real scheduler (placement) and the
// network-adapter: hosts register in placement, build and delete commands arrive through
// JetStream, the fake driver's faults steer the outcome, and a restart keeps the instances.
import { randomUUID } from "node:crypto";
import { PlacementService } from "@stratus/contracts/scheduler/v1/placement";
import { StratusError, serviceClient } from "@stratus/runtime";
import { type Mesh, startMesh } from "@stratus/runtime/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { computeNodeUuid } from "../../services/compute-agent/src/hosts/compute-node.js";
import { type AgentClient, agentClient, Recorder, waitUntil } from "./helpers.js";

const HOSTS = ["rack1-1", "rack1-2", "rack1-3", "rack2-1", "edge-1"];

describe("compute agent", () => {
  let mesh: Mesh;
  let agent: AgentClient;
  let placement: ReturnType<typeof serviceClient<typeof PlacementService>>;
  let rec: Recorder;

  beforeAll(async () => {
    mesh = await startMesh({
      services: ["scheduler", "network-adapter", "compute-agent"],
      serviceEnv: {
        "compute-agent": {
          COMPUTE_HOSTS: "rack1-[1-3],rack2-1,edge-1",
          COMPUTE_PHYSNETS: "rack1-*=physnet-rack1,rack2-*=physnet-rack2+physnet-ext",
          COMPUTE_VCPUS: "8",
          COMPUTE_MEMORY_MB: "16384",
          COMPUTE_DISK_GB: "200",
        },
      },
    });
    agent = agentClient(mesh.url("compute-agent"));
    placement = serviceClient(PlacementService, mesh.url("scheduler"));
    rec = await Recorder.start(mesh.nats);
  });
  afterAll(async () => {
    await rec?.close();
    await mesh?.close();
  });

  it("registers every host as a compute-node provider with its inventory in placement", async () => {
    const hosts = await waitUntil("all hosts in placement", async () => {
      const { hosts } = await agent.listHosts({});
      return hosts.every((h) => h.placementRegistered) ? hosts : undefined;
    });
    expect(hosts.map((h) => h.name)).toEqual(HOSTS);
    const byName = new Map(hosts.map((h) => [h.name, h]));
    expect(byName.get("rack1-2")?.physicalNetworks).toEqual(["physnet-rack1"]);
    expect(byName.get("rack2-1")?.physicalNetworks).toEqual(["physnet-rack2", "physnet-ext"]);
    expect(byName.get("edge-1")?.physicalNetworks).toEqual([]);
    for (const name of HOSTS) {
      const uuid = computeNodeUuid(name);
      expect(byName.get(name)?.computeNodeUuid).toBe(uuid);
      const { provider } = await placement.getResourceProvider({ uuid });
      expect(provider?.name).toBe(name);
      const { inventories } = await placement.getInventories({ providerUuid: uuid });
      const inv = Object.fromEntries(inventories.map((i) => [i.resourceClass, i]));
      expect(Object.keys(inv).sort()).toEqual(["DISK_GB", "MEMORY_MB", "VCPU"]);
      expect(inv.VCPU).toMatchObject({ total: 8n, reserved: 0n, allocationRatio: 4 });
      expect(inv.MEMORY_MB).toMatchObject({ total: 16384n, reserved: 512n, allocationRatio: 1 });
      expect(inv.DISK_GB).toMatchObject({ total: 200n, reserved: 0n, allocationRatio: 1 });
    }
  });

  it("spawns on a build command, reports success and lists the instance", async () => {
    const serverId = randomUUID();
    await rec.build({
      serverId,
      host: "rack1-1",
      attempt: 1,
      vcpus: 2n,
      memoryMb: 2048n,
      diskGb: 20n,
      name: "vm1",
    });
    const result = await rec.result(serverId);
    expect(result).toMatchObject({ host: "rack1-1", attempt: 1, success: true, error: "", powerState: 1 });
    const { instances } = await agent.listInstances({ host: "rack1-1" });
    expect(instances.find((i) => i.serverId === serverId)).toMatchObject({
      host: "rack1-1",
      powerState: 1,
      attempt: 1,
      name: "vm1",
      vcpus: 2n,
      memoryMb: 2048n,
    });
    expect((await agent.listInstances({ host: "rack1-2" })).instances.map((i) => i.serverId)).not.toContain(
      serverId,
    );
    const { hosts } = await agent.listHosts({});
    expect(hosts.find((h) => h.name === "rack1-1")?.runningInstances).toBeGreaterThanOrEqual(1);
  });

  it("answers a repeated build command with the same result without spawning again", async () => {
    const serverId = randomUUID();
    await rec.build({ serverId, host: "rack1-2", metadata: { fake_fail_attempts: "1" } });
    const first = await rec.result(serverId, 1);
    expect(first).toMatchObject({ success: false, retryable: true });
    await rec.build({ serverId, host: "rack1-2", attempt: 2, metadata: { fake_fail_attempts: "1" } });
    expect(await rec.result(serverId, 2)).toMatchObject({ success: true });
    // Attempt 1 again (a redelivery): still the recorded failure, and still one instance.
    await rec.build({ serverId, host: "rack1-2", metadata: { fake_fail_attempts: "1" } });
    expect(await rec.result(serverId, 1, 2)).toMatchObject({ success: false, error: first.error });
    await rec.build({ serverId, host: "rack1-2", attempt: 2, metadata: { fake_fail_attempts: "1" } });
    expect(await rec.result(serverId, 2, 2)).toMatchObject({ success: true });
    expect((await agent.listInstances({ serverId })).instances).toHaveLength(1);
  });

  it("fails the next N spawns on a host after InjectFaults, retryable", async () => {
    const res = await agent.injectFaults({ host: "rack1-3", failNextSpawns: 2, spawnDelayMs: -1 });
    expect(res.hosts).toHaveLength(1);
    expect(res.hosts[0]).toMatchObject({ name: "rack1-3", failNextSpawns: 2, spawnDelayMs: 0 });
    const ids = [randomUUID(), randomUUID(), randomUUID()];
    for (const serverId of ids.slice(0, 2)) await rec.build({ serverId, host: "rack1-3" });
    for (const serverId of ids.slice(0, 2)) {
      const r = await rec.result(serverId);
      expect(r).toMatchObject({ success: false, retryable: true });
      expect(r.error).toMatch(/injected/);
    }
    await rec.build({ serverId: ids[2] as string, host: "rack1-3" });
    expect(await rec.result(ids[2] as string)).toMatchObject({ success: true });
    const listed = (await agent.listInstances({ host: "rack1-3" })).instances.map((i) => i.serverId);
    expect(listed).toContain(ids[2]);
    expect(listed).not.toContain(ids[0]);
    expect(listed).not.toContain(ids[1]);
    // Another host was not affected.
    const other = randomUUID();
    await agent.injectFaults({ host: "rack2-1", failNextSpawns: -1, spawnDelayMs: 5 });
    await rec.build({ serverId: other, host: "rack2-1" });
    expect(await rec.result(other)).toMatchObject({ success: true });
    const { hosts } = await agent.listHosts({});
    expect(hosts.find((h) => h.name === "rack2-1")).toMatchObject({ failNextSpawns: 0, spawnDelayMs: 5 });
  });

  it("a slow host (spawn delay) does not hold up builds on the others", async () => {
    await agent.injectFaults({ host: "edge-1", failNextSpawns: -1, spawnDelayMs: 6000 });
    const slow = randomUUID();
    const fast = randomUUID();
    await rec.build({ serverId: slow, host: "edge-1" });
    await rec.build({ serverId: fast, host: "rack1-1" });
    expect(await rec.result(slow)).toMatchObject({ success: true });
    expect(await rec.result(fast)).toMatchObject({ success: true });
    const order = rec.results.map((r) => r.serverId).filter((id) => id === slow || id === fast);
    expect(order).toEqual([fast, slow]);
    await agent.injectFaults({ host: "edge-1", failNextSpawns: -1, spawnDelayMs: 0 });
  });

  it("fails spawns the server's metadata asks to fail, retryable", async () => {
    const always = randomUUID();
    for (const attempt of [1, 2, 3]) {
      await rec.build({
        serverId: always,
        host: "rack1-1",
        attempt,
        metadata: { fake_fail_spawn: "always" },
      });
      const r = await rec.result(always, attempt);
      expect(r).toMatchObject({ success: false, retryable: true });
      expect(r.error).toMatch(/fake_fail_spawn=always/);
    }
    const twice = randomUUID();
    const outcomes: boolean[] = [];
    for (const attempt of [1, 2, 3]) {
      await rec.build({ serverId: twice, host: "rack1-1", attempt, metadata: { fake_fail_attempts: "2" } });
      const r = await rec.result(twice, attempt);
      if (!r.success) expect(r.retryable).toBe(true);
      outcomes.push(r.success);
    }
    expect(outcomes).toEqual([false, false, true]);
    expect((await agent.listInstances({ serverId: always })).instances).toHaveLength(0);
    expect((await agent.listInstances({ serverId: twice })).instances).toHaveLength(1);
  });

  it("fails a build whose port the network-adapter does not know, naming the port, not retryable", async () => {
    const serverId = randomUUID();
    const portId = randomUUID();
    await rec.build({ serverId, host: "rack1-1", portIds: [portId] });
    const r = await rec.result(serverId);
    expect(r).toMatchObject({ success: false, retryable: false });
    expect(r.error).toContain(portId);
    expect(rec.vifs.filter((v) => v.serverId === serverId)).toHaveLength(0);
    expect((await agent.listInstances({ serverId })).instances).toHaveLength(0);
  });

  it("destroys the instance on a delete command", async () => {
    const serverId = randomUUID();
    await rec.build({ serverId, host: "rack2-1" });
    expect(await rec.result(serverId)).toMatchObject({ success: true });
    await rec.delete(serverId, "rack2-1");
    expect(await rec.deleteResult(serverId)).toMatchObject({ host: "rack2-1", success: true });
    expect((await agent.listInstances({ serverId })).instances).toHaveLength(0);
    // Deleting what is not there is answered too (idempotent).
    const ghost = randomUUID();
    await rec.delete(ghost, "rack2-1");
    expect(await rec.deleteResult(ghost)).toMatchObject({ success: true });
  });

  it("InjectFaults without a host changes every host and leaves negative settings alone", async () => {
    await agent.injectFaults({ host: "rack1-1", failNextSpawns: 3, spawnDelayMs: -1 });
    const all = await agent.injectFaults({ host: "", failNextSpawns: -1, spawnDelayMs: 7 });
    expect(all.hosts.map((h) => h.name)).toEqual(HOSTS);
    expect(all.hosts.every((h) => h.spawnDelayMs === 7)).toBe(true);
    expect(all.hosts.find((h) => h.name === "rack1-1")?.failNextSpawns).toBe(3);
    const reset = await agent.injectFaults({ host: "", failNextSpawns: 0, spawnDelayMs: 0 });
    expect(reset.hosts.every((h) => h.failNextSpawns === 0 && h.spawnDelayMs === 0)).toBe(true);
  });

  it("refuses hosts it does not run", async () => {
    const refused = async (p: Promise<unknown>) => {
      try {
        await p;
      } catch (err) {
        expect(err).toBeInstanceOf(StratusError);
        return err as StratusError;
      }
      throw new Error("expected a refusal");
    };
    expect((await refused(agent.listInstances({ host: "nope-1" }))).kind).toBe("not_found");
    expect((await refused(agent.injectFaults({ host: "nope-1", failNextSpawns: 1 }))).kind).toBe("not_found");
  });

  it("keeps its instances over a restart, reports them again and runs commands sent while it was down", async () => {
    const kept = randomUUID();
    await rec.build({ serverId: kept, host: "rack1-2", name: "kept" });
    expect(await rec.result(kept)).toMatchObject({ success: true });
    const before = await placement.getResourceProvider({ uuid: computeNodeUuid("rack1-2") });

    await mesh.stop("compute-agent");
    const whileDown = randomUUID();
    await rec.build({ serverId: whileDown, host: "rack1-3" });
    await mesh.restart("compute-agent");

    const { instances } = await agent.listInstances({ serverId: kept });
    expect(instances).toHaveLength(1);
    expect(instances[0]).toMatchObject({ host: "rack1-2", name: "kept", powerState: 1 });
    // Reconcile: the still-running instance is reported again.
    expect(await rec.result(kept, 1, 2)).toMatchObject({ success: true, host: "rack1-2" });
    // The command published while the agent was down is handled after it comes back.
    expect(await rec.result(whileDown)).toMatchObject({ success: true, host: "rack1-3" });
    // Registration is idempotent: the provider was not rewritten.
    await waitUntil("hosts registered again", async () =>
      (await agent.listHosts({})).hosts.every((h) => h.placementRegistered),
    );
    const after = await placement.getResourceProvider({ uuid: computeNodeUuid("rack1-2") });
    expect(after.provider?.generation).toBe(before.provider?.generation);
  });
});
