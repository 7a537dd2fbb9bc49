// The conductor with networks: none against a real scheduler and real NATS: accepted builds end
// ACTIVE on a host with its claim, reschedules go to alternates, exhausted retries end in ERROR
// with a fault and nothing held, NoValidHost, delete, quotas, idempotent client tokens, listing,
// flavors and the actions a user can read back.
import { randomUUID } from "node:crypto";
import { NetworkMode } from "@stratus/contracts/compute/v1";
import { type Mesh, startMesh } from "@stratus/runtime/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  allocationsOf,
  as,
  type ConductorClient,
  clients,
  type PlacementClient,
  refusal,
  registerHost,
  waitAll,
  waitSettled,
} from "./helpers.js";
import { type StandInAgent, startStandInAgent } from "./stand-in-agent.js";

let mesh: Mesh;
let conductor: ConductorClient;
let placement: PlacementClient;
let agent: StandInAgent;
const hosts = ["none-a", "none-b", "none-c", "none-d"];

beforeAll(async () => {
  mesh = await startMesh({
    services: ["scheduler", "conductor"],
    serviceEnv: {
      conductor: {
        QUOTA_INSTANCES: "40",
        QUOTA_CORES: "80",
        QUOTA_RAM_MB: "200000",
        // 4 build runs at once, so that a burst queues builds; they yield to 4 callers at once, or
        // to callers once 4 builds are queued (the burst test).
        BUILD_CONCURRENCY: "4",
        BUILD_YIELD_CROWD: "4",
        BUILD_YIELD_BACKLOG: "4",
        BUILD_YIELD_CONCURRENCY: "1",
        BUILD_YIELD_HOLD_MS: "300",
      },
    },
  });
  ({ conductor, placement } = clients(mesh.url("conductor"), mesh.url("scheduler")));
  for (const h of hosts) await registerHost(placement, h);
  agent = await startStandInAgent(mesh.nats);
});
afterAll(async () => {
  await agent?.close();
  await mesh?.close();
});

const boot = (project: string, extra: Record<string, unknown> = {}) =>
  as(project, () =>
    conductor.createServers({
      name: "vm",
      flavorId: "1",
      imageRef: "cirros",
      networkMode: NetworkMode.NONE,
      ...extra,
    }),
  );

describe("build with networks: none", () => {
  it("goes ACTIVE on a host that holds its claim; the build steps are readable as events", async () => {
    const project = `p-${randomUUID()}`;
    const res = await boot(project);
    expect(res.servers).toHaveLength(1);
    const accepted = res.servers[0]!;
    expect(accepted.status).toBe("BUILD");
    const s = await waitSettled(conductor, accepted.id);
    expect(s.status).toBe("ACTIVE");
    expect(hosts).toContain(s.host);
    expect(s.powerState).toBe(1);
    expect(s.launchedAt).toBeDefined();
    const alloc = await allocationsOf(placement, s.id);
    expect(alloc).toHaveLength(1);
    expect(alloc[0]!.resources).toMatchObject({ VCPU: 1n, MEMORY_MB: 512n, DISK_GB: 1n });

    const actions = await as(project, () => conductor.listInstanceActions({ serverId: s.id }));
    expect(actions.actions.map((a) => a.action)).toEqual(["create"]);
    const action = await as(project, () =>
      conductor.getInstanceAction({ serverId: s.id, requestId: actions.actions[0]!.requestId }),
    );
    expect(action.action!.events.map((e) => [e.event, e.result])).toEqual([
      ["conductor_schedule_instances", "Success"],
      ["compute_build_and_run_instance", "Success"],
    ]);
    expect(action.action!.events[1]!.host).toBe(s.host);
  });

  it("a first host that fails the spawn: ACTIVE on an alternate, attempt 2, first claim released", async () => {
    const res = await boot(`p-${randomUUID()}`, { metadata: { fake_fail_attempts: "1" } });
    const s = await waitSettled(conductor, res.servers[0]!.id);
    expect(s.status).toBe("ACTIVE");
    const cmds = agent.commands.filter((c) => c.serverId === s.id);
    expect(cmds.map((c) => c.attempt)).toEqual([1, 2]);
    expect(cmds[1]!.host).not.toBe(cmds[0]!.host);
    expect(s.host).toBe(cmds[1]!.host);
    const alloc = await allocationsOf(placement, s.id);
    expect(alloc).toHaveLength(1);
    const a = await as(s.projectId, () => conductor.listInstanceActions({ serverId: s.id }));
    const events = (
      await as(s.projectId, () =>
        conductor.getInstanceAction({ serverId: s.id, requestId: a.actions[0]!.requestId }),
      )
    ).action!.events.map((e) => `${e.event}:${e.result}`);
    expect(events).toEqual([
      "conductor_schedule_instances:Success",
      "compute_build_and_run_instance:Error",
      "conductor_reschedule:Success",
      "compute_build_and_run_instance:Success",
    ]);
  });

  it("every attempt fails: ERROR with a fault after max attempts (3), no claim left", async () => {
    const res = await boot(`p-${randomUUID()}`, { metadata: { fake_fail_spawn: "always" } });
    const s = await waitSettled(conductor, res.servers[0]!.id);
    expect(s.status).toBe("ERROR");
    expect(s.fault?.message).toMatch(/Exceeded maximum number of retries/);
    expect(s.fault?.code).toBe(500);
    const cmds = agent.commands.filter((c) => c.serverId === s.id);
    expect(cmds.map((c) => c.attempt)).toEqual([1, 2, 3]);
    expect(new Set(cmds.map((c) => c.host)).size).toBe(3);
    expect(await allocationsOf(placement, s.id)).toEqual([]);
  });

  it("no host fits: ERROR with a NoValidHost fault and nothing claimed", async () => {
    const project = `p-${randomUUID()}`;
    const flavor = await as(
      "admin",
      () =>
        conductor.createFlavor({
          flavor: { name: `huge-${randomUUID().slice(0, 8)}`, vcpus: 64, ramMb: 1024, diskGb: 1 },
        }),
      "admin",
      true,
    );
    const res = await as(project, () =>
      conductor.createServers({ name: "big", flavorId: flavor.flavor!.id, networkMode: NetworkMode.NONE }),
    );
    const s = await waitSettled(conductor, res.servers[0]!.id);
    expect(s.status).toBe("ERROR");
    expect(s.fault?.message).toMatch(/No valid host was found/);
    expect(s.fault?.details).toBe("no_valid_host");
    expect(await allocationsOf(placement, s.id)).toEqual([]);
  });

  it("delete: the claim is released, gone from lists, still readable by id as DELETED", async () => {
    const project = `p-${randomUUID()}`;
    const s = await waitSettled(conductor, (await boot(project)).servers[0]!.id);
    expect(s.status).toBe("ACTIVE");
    await as(project, () => conductor.deleteServer({ id: s.id }));
    const gone = await waitSettled(conductor, s.id);
    expect(gone.status).toBe("DELETED");
    expect(await allocationsOf(placement, s.id)).toEqual([]);
    const listed = await as(project, () => conductor.listServers({}));
    expect(listed.servers.map((x) => x.id)).not.toContain(s.id);
    expect((await refusal(as(project, () => conductor.getServer({ id: s.id })))).kind).toBe("not_found");
    const actions = await as(project, () => conductor.listInstanceActions({ serverId: s.id }));
    expect(actions.actions.map((a) => a.action).sort()).toEqual(["create", "delete"]);
  });

  it("min/max count, quota per project (limit 40 here), idempotent client token", async () => {
    const project = `p-${randomUUID()}`;
    const token = randomUUID();
    const first = await boot(project, { minCount: 2, maxCount: 3, clientToken: token });
    expect(first.servers).toHaveLength(3);
    expect(first.servers.map((s) => s.launchIndex)).toEqual([0, 1, 2]);
    const again = await boot(project, { minCount: 2, maxCount: 3, clientToken: token });
    expect(again.servers.map((s) => s.id)).toEqual(first.servers.map((s) => s.id));
    expect(again.reservationId).toBe(first.reservationId);
    const done = await waitAll(
      conductor,
      first.servers.map((s) => s.id),
    );
    expect(done.map((s) => s.status)).toEqual(["ACTIVE", "ACTIVE", "ACTIVE"]);

    const limits = await as(project, () => conductor.getLimits({}));
    expect(limits).toMatchObject({ maxInstances: 40, instancesUsed: 3, coresUsed: 3, ramMbUsed: 1536 });
    // 40 instances allowed, 3 used: at least 38 more cannot fit.
    const refused = await refusal(boot(project, { minCount: 38, maxCount: 40 }));
    expect(refused.kind).toBe("quota_exceeded");
    expect((await as(project, () => conductor.getLimits({}))).instancesUsed).toBe(3);
  });

  // That builds yield to the callers while they crowd in is run-queue.test.ts's to show: from here
  // it cannot be told from builds that merely run 4 at a time.
  it("a burst of creates more than the builds run at once: each accepted, every queued build ends ACTIVE", async () => {
    const project = `p-${randomUUID()}`;
    const accepted = await Promise.all(Array.from({ length: 30 }, () => boot(project)));
    const ids = accepted.map((r) => r.servers[0]!.id);
    expect(new Set(ids).size).toBe(30);
    // Builds that queued behind the burst start when it passes, with no other call to wake them.
    const done = await waitAll(conductor, ids, 60_000);
    expect(done.map((s) => s.status)).toEqual(ids.map(() => "ACTIVE"));
    for (const id of ids) expect(Object.keys(await allocationsOf(placement, id))).toHaveLength(1);
  });

  it("lists are project scoped with paging; admin sees all projects", async () => {
    const p1 = `p-${randomUUID()}`;
    const p2 = `p-${randomUUID()}`;
    const a = await boot(p1, { minCount: 3, maxCount: 3 });
    await boot(p2);
    const ids = a.servers.map((s) => s.id);
    const page1 = await as(p1, () => conductor.listServers({ limit: 2 }));
    expect(page1.servers).toHaveLength(2);
    const page2 = await as(p1, () => conductor.listServers({ limit: 2, marker: page1.servers[1]!.id }));
    expect(page2.servers).toHaveLength(1);
    expect([...page1.servers, ...page2.servers].map((s) => s.id).sort()).toEqual([...ids].sort());
    expect((await refusal(as(p2, () => conductor.getServer({ id: ids[0]! })))).kind).toBe("not_found");
    const all = await as("admin", () => conductor.listServers({ allProjects: true }), "admin", true);
    expect(new Set(all.servers.map((s) => s.projectId))).toEqual(expect.objectContaining(new Set([p1, p2])));
    const byName = await as(p1, () => conductor.listServers({ name: "vm-2" }));
    expect(byName.servers.map((s) => s.id)).toEqual([ids[1]]);
    expect((await refusal(as(p1, () => conductor.listServers({ marker: randomUUID() })))).kind).toBe(
      "invalid_input",
    );
    await waitAll(conductor, ids);
  });

  it("flavors: the five seeded sizes; only an admin creates one", async () => {
    const list = await conductor.listFlavors({});
    expect(list.flavors.slice(0, 5).map((f) => [f.id, f.name, f.vcpus, f.ramMb, f.diskGb])).toEqual([
      ["1", "m1.tiny", 1, 512, 1],
      ["2", "m1.small", 1, 2048, 20],
      ["3", "m1.medium", 2, 4096, 40],
      ["4", "m1.large", 4, 8192, 80],
      ["5", "m1.xlarge", 8, 16384, 160],
    ]);
    expect((await conductor.getFlavor({ id: "m1.small" })).flavor!.id).toBe("2");
    const denied = await refusal(
      as("p", () => conductor.createFlavor({ flavor: { name: "x", vcpus: 1, ramMb: 1, diskGb: 1 } })),
    );
    expect(denied.kind).toBe("forbidden");
    const dup = await refusal(
      as(
        "admin",
        () => conductor.createFlavor({ flavor: { name: "m1.tiny", vcpus: 1, ramMb: 1 } }),
        "admin",
        true,
      ),
    );
    expect(dup.kind).toBe("conflict");
  });

  it("refuses bad input without creating anything", async () => {
    const project = `p-${randomUUID()}`;
    expect((await refusal(boot(project, { flavorId: "nope" }))).kind).toBe("invalid_input");
    expect((await refusal(boot(project, { minCount: 3, maxCount: 2 }))).kind).toBe("invalid_input");
    expect((await refusal(boot(project, { name: "" }))).kind).toBe("invalid_input");
    expect(
      (await refusal(boot(project, { networkMode: NetworkMode.LIST, networks: [{ networkId: "x" }] }))).kind,
    ).toBe("invalid_input");
    expect((await as(project, () => conductor.getLimits({}))).instancesUsed).toBe(0);
  });
});
