// The build steps against in-process peers (testing/fake-peers.ts) and the real compute schema on
// PGlite: allocation and scheduling ride on the write after the send; a run that takes over after
// an unrecorded send finds the port by its slot name and the host by its claim; a delete that
// overtakes such a build sends its DeleteCommand to that host and releases everything; a failed
// attempt moves to the next alternate that still fits, or to the scheduler again.
import { randomUUID } from "node:crypto";
import { createLogger, type Database } from "@stratus/runtime";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Quotas } from "../compute/quotas.js";
import type { BuildCaller } from "../compute/server-acceptance.js";
import { type RequestedNetwork, ServerAcceptance } from "../compute/server-acceptance.js";
import { Servers } from "../compute/servers.js";
import { openTestDatabase, watched } from "../testing/database.js";
import { callsAs, callsNotAfter, FakeCommands, FakeDestinations, FakePorts } from "../testing/fake-peers.js";
import { newServersRequest } from "../testing/requests.js";
import { Builder } from "./builder.js";

let db: Database;
let close: () => Promise<void>;
let acceptance: ServerAcceptance;
/** Statements that write a build step, as the builder sent them. */
let stepWrites = 0;

beforeAll(async () => {
  ({ db, close } = await openTestDatabase("build-steps-test"));
  acceptance = new ServerAcceptance(
    db,
    new Quotas(db, { instances: 1000, cores: 1000, ram: 1_000_000 }),
    new Servers(db),
  );
});
afterAll(async () => {
  await close?.();
});

/**
 * A builder over fake peers; `hosts` are the scheduler's, in its order of preference. `owner` and
 * `leaseMs` make another replica (of the same database) with its own peers; `renewals` off makes
 * its lease renewals fail as with the database out of reach.
 */
function mesh(
  hosts = ["h1", "h2", "h3"],
  o: { owner?: string; leaseMs?: number; renewals?: { fail: boolean } } = {},
) {
  const ports = new FakePorts();
  const destinations = new FakeDestinations(hosts);
  const commands = new FakeCommands();
  const counted = watched(db, (sql) => {
    if (sql.includes("UPDATE server_builds sb SET")) stepWrites++;
    if (o.renewals?.fail && sql.includes("b SET lease_until")) throw new Error("database out of reach");
  });
  const builder = new Builder({
    db: counted,
    peers: { ports, destinations, commands },
    logger: createLogger("build-steps-test", "silent"),
    owner: o.owner ?? "test-conductor",
    leaseMs: o.leaseMs ?? 30_000,
    buildTimeoutMs: 60_000,
    buildDeadlineMs: 600_000,
    concurrency: 8,
  });
  /** Accepts one server and runs its build until it waits on a compute agent (or fails). */
  const boot = async (networks: Partial<RequestedNetwork>[], caller?: BuildCaller, settle = true) => {
    const request = newServersRequest(`p-${randomUUID()}`, {
      networkMode: networks.length ? "list" : "none",
      networks: networks.map((n) => ({ networkId: "", portId: "", fixedIp: "", tag: "", ...n })),
      requestId: `req-${randomUUID()}`,
      caller,
    });
    const lease = builder.newLease();
    const server = (await acceptance.create({ ...request, lease })).servers[0]!;
    builder.kickCreated(server, request, lease);
    if (settle) await builder.settle(server.id);
    return server.id;
  };
  return { ports, destinations, commands, builder, boot };
}

async function buildOf(id: string) {
  const [b] = await db.query<{
    phase: string;
    attempt: number;
    command_sent: boolean;
    ports: { portId: string; created: boolean }[];
    failed_hosts: string[];
  }>("SELECT phase, attempt, command_sent, ports, failed_hosts FROM server_builds WHERE server_id = $1", [
    id,
  ]);
  return b!;
}

async function serverOf(id: string) {
  const [s] = await db.query<{ host: string; vm_state: string; deleted: boolean; addresses: unknown[] }>(
    "SELECT host, vm_state, deleted, addresses FROM servers WHERE id = $1",
    [id],
  );
  return s!;
}

/** The create action's events, in order, as `event:result@host`. */
async function eventsOf(id: string): Promise<string[]> {
  const rows = await db.query<{ event: string; result: string; host: string }>(
    `SELECT e.event, e.result, e.host FROM instance_action_events e
     JOIN instance_actions a ON a.id = e.action_id WHERE a.server_id = $1 AND a.action = 'create' ORDER BY e.id`,
    [id],
  );
  return rows.map((r) => `${r.event}:${r.result}@${r.host}`);
}

const dies = async () => {
  throw new Error("the conductor died right after the send");
};

describe("build steps", () => {
  it("allocation and the schedule are written with the send: one write for the three steps", async () => {
    const m = mesh();
    let atSend: unknown;
    m.commands.afterBuild = async (c) => {
      atSend = { build: await buildOf(c.serverId), events: await eventsOf(c.serverId) };
    };
    const before = stepWrites;
    const id = await m.boot([{ networkId: "net-1" }]);
    // Nothing was written between the accept and the send.
    expect(atSend).toEqual({
      build: { phase: "allocating", attempt: 0, command_sent: false, ports: [], failed_hosts: [] },
      events: [],
    });
    expect(stepWrites - before).toBe(1);
    const b = await buildOf(id);
    expect(b).toMatchObject({ phase: "spawning", attempt: 1, command_sent: true });
    expect(b.ports).toEqual([expect.objectContaining({ portId: m.ports.created[0], created: true })]);
    expect(await serverOf(id)).toMatchObject({
      host: "h1",
      addresses: [expect.objectContaining({ ipAddress: "10.0.0.10" })],
    });
    expect(await eventsOf(id)).toEqual([
      "conductor_allocate_networks:Success@",
      "conductor_schedule_instances:Success@h1",
      "conductor_bind_ports:Success@h1",
    ]);
    expect(m.commands.builds).toEqual([
      expect.objectContaining({ serverId: id, host: "h1", attempt: 1, portIds: m.ports.created }),
    ]);
  });

  it("a run after an unrecorded send adopts the port by its slot name and stays on its claim's host", async () => {
    const m = mesh();
    m.commands.afterBuild = dies;
    const id = await m.boot([{ networkId: "net-1" }]);
    expect(await buildOf(id)).toMatchObject({ phase: "allocating", command_sent: false, ports: [] });
    m.commands.afterBuild = undefined;
    m.builder.kick(id);
    await m.builder.settle(id);
    // No second port, no second SelectDestinations; the same attempt to the same host.
    expect(m.ports.created).toHaveLength(1);
    expect(m.destinations.asked).toHaveLength(1);
    expect(m.commands.builds.map((c) => [c.host, c.attempt, c.portIds])).toEqual([
      ["h1", 1, m.ports.created],
      ["h1", 1, m.ports.created],
    ]);
    const b = await buildOf(id);
    expect(b).toMatchObject({ phase: "spawning", attempt: 1, command_sent: true });
    expect(b.ports.map((p) => p.portId)).toEqual(m.ports.created);
    expect(await serverOf(id)).toMatchObject({ host: "h1" });
  });

  it("a delete overtaking an unrecorded send: DeleteCommand to the claim's host, claim released, ports freed", async () => {
    const m = mesh();
    m.commands.afterBuild = dies;
    const userPort = m.ports.userPort("net-2");
    const id = await m.boot([{ networkId: "net-1" }, { portId: userPort }]);
    expect(await serverOf(id)).toMatchObject({ host: "" });
    await m.builder.delete(id, { requestId: `req-${randomUUID()}`, userId: "u", projectId: "p" });
    expect(m.commands.deletes).toEqual([{ serverId: id, host: "h1" }]);
    expect(m.destinations.claims.has(id)).toBe(false);
    expect(m.ports.deleted).toEqual(m.ports.created);
    expect(m.ports.unbound).toEqual([userPort]);
    expect(m.ports.ports.get(userPort)).toMatchObject({ deviceId: "" });
    expect(await serverOf(id)).toMatchObject({ vm_state: "deleted", deleted: true });
    expect(await buildOf(id)).toMatchObject({ phase: "done" });
  });

  it("a failed attempt goes to the next alternate that still fits; a success makes it ACTIVE", async () => {
    const m = mesh();
    const id = await m.boot([]);
    m.destinations.full.add("h2");
    const result = { serverId: id, error: "", retryable: true, powerState: 1 };
    const failed = { ...result, host: "h1", attempt: 1, success: false, error: "spawn failed on h1" };
    expect(await m.builder.onResult(failed)).toBe(true);
    await m.builder.settle(id);
    expect(m.commands.builds.map((c) => [c.host, c.attempt])).toEqual([
      ["h1", 1],
      ["h3", 2],
    ]);
    expect(m.destinations.claims.get(id)?.host).toBe("h3");
    expect(await m.builder.onResult({ ...result, host: "h3", attempt: 2, success: true })).toBe(true);
    expect(await buildOf(id)).toMatchObject({ phase: "done", attempt: 2, failed_hosts: ["h1"] });
    expect(await serverOf(id)).toMatchObject({ host: "h3", vm_state: "active" });
    expect(await eventsOf(id)).toEqual([
      "conductor_schedule_instances:Success@h1",
      "compute_build_and_run_instance:Error@h1",
      "conductor_reschedule:Success@h3",
      "compute_build_and_run_instance:Success@h3",
    ]);
    expect(m.commands.states.at(-1)).toMatchObject({ serverId: id, vmState: "active", host: "h3" });
  });

  it("no alternate fits any more: the scheduler is asked again without the failed host", async () => {
    const m = mesh();
    const id = await m.boot([]);
    m.destinations.full.add("h2").add("h3");
    const failed = { serverId: id, host: "h1", attempt: 1, success: false, error: "no", retryable: true };
    expect(await m.builder.onResult({ ...failed, powerState: 0 })).toBe(true);
    await m.builder.settle(id);
    // The claim still on the failed host is not taken for a schedule an earlier run left unrecorded.
    expect(m.destinations.asked.map((r) => r.ignoreHosts)).toEqual([[], ["h1"]]);
    expect(m.commands.builds.map((c) => [c.host, c.attempt])).toEqual([
      ["h1", 1],
      ["h2", 2],
    ]);
    expect(await buildOf(id)).toMatchObject({ phase: "spawning", attempt: 2, failed_hosts: ["h1"] });
  });

  it("every step calls its peers as the build's user: the first run, a later one, a failure's and a delete's", async () => {
    const m = mesh();
    const alice = { userId: "alice", projectId: "p-alice", roles: ["member", "reader"] };
    callsAs.length = 0;
    const id = await m.boot([{ networkId: "net-1" }], alice);
    const failed = { serverId: id, host: "h1", attempt: 1, success: false, error: "no", retryable: true };
    expect(await m.builder.onResult({ ...failed, powerState: 0 })).toBe(true);
    await m.builder.settle(id);
    await m.builder.delete(id, { requestId: `req-${randomUUID()}`, userId: "admin", projectId: "other" });
    expect(callsAs.length).toBeGreaterThanOrEqual(6);
    expect(new Set(callsAs)).toEqual(new Set(["user:alice@p-alice"]));
  });

  it("a build a service accepted as itself calls its peers as the conductor itself", async () => {
    const m = mesh();
    callsAs.length = 0;
    await m.boot([{ networkId: "net-1" }]);
    expect(callsAs.length).toBeGreaterThanOrEqual(3);
    expect(new Set(callsAs)).toEqual(new Set(["service"]));
  });
});

describe("the lease of a run that waits on a peer", () => {
  const LEASE_MS = 400;
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
  /** The network lookup before a build's first port waits until the returned function is called. */
  function stallNetworkLookups(ports: FakePorts): () => void {
    let open!: () => void;
    const gate = new Promise<void>((r) => {
      open = r;
    });
    const lookup = ports.network.bind(ports);
    ports.network = async (id) => {
      await gate;
      return lookup(id);
    };
    return open;
  }
  const callsFor = (m: ReturnType<typeof mesh>, id: string) => ({
    created: [...m.ports.ports.values()].filter((p) => p.deviceId === id).length,
    asked: m.destinations.asked.filter((r) => r.serverId === id).length,
    builds: m.commands.builds.filter((c) => c.serverId === id).length,
  });

  it("is renewed while the run waits: another replica's sweeps do not take the build over", async () => {
    const a = mesh(["h1"], { owner: "conductor-a", leaseMs: LEASE_MS });
    const b = mesh(["h2"], { owner: "conductor-b", leaseMs: LEASE_MS });
    const open = stallNetworkLookups(a.ports);
    const id = await a.boot([{ networkId: "net-1" }], undefined, false);
    for (let i = 0; i < 12; i++) {
      await b.builder.sweep();
      await b.builder.settle(id);
      await sleep(LEASE_MS / 4);
    }
    expect(callsFor(b, id)).toEqual({ created: 0, asked: 0, builds: 0 });
    open();
    await a.builder.settle(id);
    expect(callsFor(a, id)).toEqual({ created: 1, asked: 1, builds: 1 });
    expect(await buildOf(id)).toMatchObject({ phase: "spawning", attempt: 1, command_sent: true });
    expect(await serverOf(id)).toMatchObject({ host: "h1" });
    a.builder.stop();
    b.builder.stop();
  });

  it("every call of a run says when its peer must have started it by: within the lease", async () => {
    const m = mesh(["h1"], { owner: "conductor-a", leaseMs: 60_000 });
    callsNotAfter.length = 0;
    const before = Date.now();
    await m.boot([{ networkId: "net-1" }]);
    // The network lookup, the port's creation, the schedule, the bind (the fakes record these).
    expect(callsNotAfter.length).toBeGreaterThanOrEqual(4);
    for (const t of callsNotAfter) {
      expect(t).toBeGreaterThan(before);
      expect(t).toBeLessThan(Date.now() + 60_000);
    }
    m.builder.stop();
  });

  it("once a delete took the build over, the waiting run makes no further call", async () => {
    const a = mesh(["h1"], { owner: "conductor-a", leaseMs: LEASE_MS });
    const b = mesh(["h1"], { owner: "conductor-b", leaseMs: LEASE_MS });
    const open = stallNetworkLookups(a.ports);
    const id = await a.boot([{ networkId: "net-1" }], undefined, false);
    await b.builder.delete(id, { requestId: `req-${randomUUID()}`, userId: "u", projectId: "p" });
    expect(await serverOf(id)).toMatchObject({ vm_state: "deleted", deleted: true });
    // A renewal finds the row someone else's.
    await sleep(LEASE_MS / 2);
    open();
    await a.builder.settle(id);
    expect(callsFor(a, id)).toEqual({ created: 0, asked: 0, builds: 0 });
    expect(await buildOf(id)).toMatchObject({ phase: "done" });
    a.builder.stop();
    b.builder.stop();
  });

  it("when renewals fail, the run stops before its next call and another replica takes the build once the lease ran out", async () => {
    const renewals = { fail: true };
    const a = mesh(["h1"], { owner: "conductor-a", leaseMs: LEASE_MS, renewals });
    const b = mesh(["h2"], { owner: "conductor-b", leaseMs: LEASE_MS });
    const open = stallNetworkLookups(a.ports);
    const id = await a.boot([{ networkId: "net-1" }], undefined, false);
    await sleep(LEASE_MS);
    open();
    await a.builder.settle(id);
    expect(callsFor(a, id)).toEqual({ created: 0, asked: 0, builds: 0 });
    await b.builder.sweep();
    await b.builder.settle(id);
    expect(callsFor(b, id)).toEqual({ created: 1, asked: 1, builds: 1 });
    expect(await serverOf(id)).toMatchObject({ host: "h2" });
    a.builder.stop();
    b.builder.stop();
  });
});
