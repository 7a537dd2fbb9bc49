// Crash safety: a conductor killed (SIGKILL) in the middle of 50 builds and restarted finishes or
// cleanly fails every one of them, and an audit of placement finds no claim that does not belong
// to an ACTIVE server. Two conductor replicas on one PostgreSQL share the work without building
// anything twice, and one of them dying mid-flight is covered by the other.
import { NetworkMode } from "@stratus/contracts/compute/v1";
import {
  createTempDatabase,
  freePort,
  type Mesh,
  postgresAvailable,
  type ServiceProcess,
  startMesh,
  startService,
} from "@stratus/runtime/testing";
import pg from "pg";
import { afterAll, describe, expect, it } from "vitest";
import {
  activatedAfter,
  allocationsOf,
  as,
  type ConductorClient,
  clients,
  type PlacementClient,
  registerHost,
  until,
  waitAll,
} from "./helpers.js";
import { type StandInAgent, startStandInAgent } from "./stand-in-agent.js";

const havePostgres = await postgresAvailable();
if (!havePostgres)
  console.warn("crash.test: PostgreSQL on 127.0.0.1:5432 is not reachable; skipping the two-replica case");
const quota = { QUOTA_INSTANCES: "1000", QUOTA_CORES: "1000", QUOTA_RAM_MB: "10000000" };

/** Every ACTIVE server holds exactly its flavor on its host; nobody else holds anything. */
async function audit(
  placement: PlacementClient,
  conductor: ConductorClient,
  hostUuids: string[],
  ids: string[],
) {
  const servers = await waitAll(conductor, ids, 180_000);
  for (const s of servers) expect(["ACTIVE", "ERROR"]).toContain(s.status);
  let active = 0;
  for (const s of servers) {
    const alloc = await allocationsOf(placement, s.id);
    if (s.status === "ACTIVE") {
      active++;
      expect(alloc).toHaveLength(1);
      expect(alloc[0]!.resources.VCPU).toBe(1n);
    } else {
      expect(alloc).toEqual([]);
    }
  }
  let used = 0n;
  for (const uuid of hostUuids) used += (await placement.getUsages({ providerUuid: uuid })).usages.VCPU ?? 0n;
  expect(used).toBe(BigInt(active));
  return servers;
}

describe("conductor crash", () => {
  let mesh: Mesh;
  let agent: StandInAgent;
  afterAll(async () => {
    await agent?.close();
    await mesh?.close();
  });

  it("killed in the middle of 50 builds and restarted: every server ends ACTIVE or ERROR, no leaked claim", async () => {
    mesh = await startMesh({
      services: ["scheduler", "conductor"],
      serviceEnv: { conductor: { ...quota, BUILD_SWEEP_MS: "500", BUILD_CONCURRENCY: "8" } },
    });
    const { conductor, placement } = clients(mesh.url("conductor"), mesh.url("scheduler"));
    const hostUuids: string[] = [];
    for (let i = 0; i < 10; i++) hostUuids.push(await registerHost(placement, `crash-${i}`));
    agent = await startStandInAgent(mesh.nats);
    const res = await as("crash", () =>
      conductor.createServers({
        name: "c",
        flavorId: "1",
        minCount: 50,
        maxCount: 50,
        networkMode: NetworkMode.NONE,
        // Some reschedule, so that the kill also lands between attempts.
        metadata: { fake_fail_attempts: "1" },
      }),
    );
    expect(res.servers).toHaveLength(50);
    const ids = res.servers.map((s) => s.id);
    // Killed once builds are under way: some have sent their command.
    const sent = agent;
    await until(
      "10 builds commanded",
      async () => new Set(sent.commands.map((c) => c.serverId)).size >= 10,
      30_000,
      5,
    );
    await mesh.stop("conductor", "SIGKILL");
    const killedAt = new Date();
    await mesh.restart("conductor");
    const servers = await audit(placement, conductor, hostUuids, ids);
    expect(servers.filter((s) => s.status === "ACTIVE").length).toBe(50);
    // The kill landed mid-build: builds still in BUILD then were finished by the restarted one.
    expect(activatedAfter(servers, killedAt).length).toBeGreaterThan(0);
  }, 300_000);
});

describe.skipIf(!havePostgres)("two conductor replicas on one PostgreSQL", () => {
  /**
   * Each replica accepts 25 builds (all fail their first spawn); the first replica dies for good,
   * at once or once `commandedBeforeKill` of its builds have sent a command, and the second must
   * finish its builds too, once their leases run out.
   */
  async function replicas(commandedBeforeKill: number): Promise<void> {
    const db = await createTempDatabase("stratus_conductor");
    let mesh: Mesh | undefined;
    let second: ServiceProcess | undefined;
    let agent: StandInAgent | undefined;
    try {
      const env = {
        ...quota,
        DATABASE_URL: db.url,
        BUILD_SWEEP_MS: "300",
        BUILD_LEASE_MS: "1500",
        BUILD_CONCURRENCY: "8",
      };
      mesh = await startMesh({ services: ["scheduler", "conductor"], serviceEnv: { conductor: env } });
      second = await startService("conductor", { ...mesh.env, ...env, PORT: String(await freePort()) });
      const { conductor, placement } = clients(mesh.url("conductor"), mesh.url("scheduler"));
      const other = clients(second.url, mesh.url("scheduler")).conductor;
      const hostUuids: string[] = [];
      for (let i = 0; i < 10; i++) hostUuids.push(await registerHost(placement, `rep-${i}`));
      agent = await startStandInAgent(mesh.nats);
      const boot = (c: ConductorClient, n: number) =>
        as("replicas", () =>
          c.createServers({
            name: "r",
            flavorId: "1",
            minCount: n,
            maxCount: n,
            networkMode: NetworkMode.NONE,
            metadata: { fake_fail_attempts: "1" },
          }),
        );
      const [a, b] = await Promise.all([boot(conductor, 25), boot(other, 25)]);
      const ids = [...a.servers, ...b.servers].map((s) => s.id);
      const firsts = new Set(a.servers.map((s) => s.id));
      const sent = agent;
      await until(
        `${commandedBeforeKill} of the first replica's builds commanded`,
        async () =>
          new Set(sent.commands.filter((c) => firsts.has(c.serverId)).map((c) => c.serverId)).size >=
          commandedBeforeKill,
        30_000,
        5,
      );
      await mesh.stop("conductor", "SIGKILL");
      const killedAt = new Date();
      const servers = await audit(placement, other, hostUuids, ids);
      expect(servers.filter((s) => s.status === "ACTIVE").length).toBe(50);
      // Some of the first replica's builds were still in BUILD when it died: the other built them.
      const finishedByOther = activatedAfter(servers, killedAt).filter((s) => firsts.has(s.id));
      expect(finishedByOther.length).toBeGreaterThan(0);
      // Each server runs where its last attempt was commanded (a resent attempt keeps its host).
      for (const s of servers) {
        const cmds = agent.commands.filter((c) => c.serverId === s.id);
        const last = cmds.reduce((m, c) => (c.attempt > m.attempt ? c : m));
        expect(last.attempt).toBe(2);
        expect(s.host).toBe(last.host);
      }
    } finally {
      await second?.stop("SIGKILL");
      await agent?.close();
      await mesh?.close();
      await db.drop();
    }
  }

  // The first schedule's outcome is written with the build command's send (after it): a
  // conductor that dies between the two leaves builds whose commands went out with no host
  // recorded. Whatever takes them over next must act on those hosts.
  async function sentNotWritten(
    metadata: Record<string, string>,
    then: (t: {
      mesh: Mesh;
      agent: StandInAgent;
      ids: string[];
      first: Map<string, string>;
      conductor: ConductorClient;
      placement: PlacementClient;
      hostUuids: string[];
    }) => Promise<void>,
  ): Promise<void> {
    const db = await createTempDatabase("stratus_conductor");
    const sql = new pg.Client({ connectionString: db.url });
    let mesh: Mesh | undefined;
    let agent: StandInAgent | undefined;
    try {
      mesh = await startMesh({
        services: ["scheduler", "conductor"],
        serviceEnv: { conductor: { ...quota, DATABASE_URL: db.url, BUILD_SWEEP_MS: "300" } },
      });
      const { conductor, placement } = clients(mesh.url("conductor"), mesh.url("scheduler"));
      const hostUuids: string[] = [];
      for (let i = 0; i < 10; i++) hostUuids.push(await registerHost(placement, `sent-${i}`));
      agent = await startStandInAgent(mesh.nats);
      await sql.connect();
      // The scheduler is held still while the builds are accepted, so that their rows can be
      // locked before anything else is written to them: the write after the send then waits.
      const scheduler = mesh.services.scheduler!.proc;
      scheduler.kill("SIGSTOP");
      const res = await as("sent", () =>
        conductor.createServers({
          name: "s",
          flavorId: "1",
          minCount: 6,
          maxCount: 6,
          networkMode: NetworkMode.NONE,
          metadata,
        }),
      );
      const ids = res.servers.map((s) => s.id);
      await sql.query("BEGIN");
      await sql.query("SELECT 1 FROM server_builds WHERE server_id = ANY($1) FOR UPDATE", [ids]);
      scheduler.kill("SIGCONT");
      const sent = agent;
      await until("every build command sent", async () =>
        ids.every((id) => sent.commands.some((c) => c.serverId === id)),
      );
      const first = new Map(ids.map((id) => [id, sent.commands.find((c) => c.serverId === id)!.host]));
      await mesh.stop("conductor", "SIGKILL");
      // The dead conductor's writes, still waiting on the locks, must not run once they are freed.
      await sql.query(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()",
      );
      await sql.query("ROLLBACK");
      const written = await sql.query(
        "SELECT count(*)::int AS n FROM server_builds WHERE server_id = ANY($1) AND command_sent",
        [ids],
      );
      expect(written.rows[0].n).toBe(0); // no build recorded its command
      await then({ mesh, agent, ids, first, conductor, placement, hostUuids });
    } finally {
      await sql.end().catch(() => undefined);
      await agent?.close();
      await mesh?.close();
      await db.drop();
    }
  }

  it("killed after sending first build commands and before writing them: builds stay on their hosts", async () => {
    await sentNotWritten({}, async ({ mesh, agent, ids, first, conductor, placement, hostUuids }) => {
      await mesh.restart("conductor");
      const servers = await audit(placement, conductor, hostUuids, ids);
      for (const s of servers) {
        expect(s.status).toBe("ACTIVE");
        expect(s.host).toBe(first.get(s.id));
        // Sent again after the restart, to the same host with the same attempt; never elsewhere.
        const cmds = agent.commands.filter((c) => c.serverId === s.id);
        expect(cmds.length).toBeGreaterThanOrEqual(2);
        for (const c of cmds) expect([c.host, c.attempt]).toEqual([s.host, 1]);
      }
    });
  }, 300_000);

  it("such builds whose first host then fails are scheduled again (their alternates are unknown)", async () => {
    const failFirst = { fake_fail_attempts: "1" };
    await sentNotWritten(failFirst, async ({ mesh, agent, ids, first, conductor, placement, hostUuids }) => {
      await mesh.restart("conductor");
      const servers = await audit(placement, conductor, hostUuids, ids);
      for (const s of servers) {
        expect(s.status).toBe("ACTIVE");
        const cmds = agent.commands.filter((c) => c.serverId === s.id);
        for (const c of cmds.filter((x) => x.attempt === 1)) expect(c.host).toBe(first.get(s.id));
        expect(cmds.at(-1)).toMatchObject({ attempt: 2, host: s.host });
        expect(s.host).not.toBe(first.get(s.id));
      }
    });
  }, 300_000);

  it("such builds deleted before anything recorded their host: the delete goes to that host", async () => {
    await sentNotWritten({}, async ({ mesh, agent, ids, first, conductor, placement }) => {
      // The restarted conductor takes the builds over but cannot reach the scheduler yet, so the
      // deletes overtake them, with no host on record.
      const scheduler = mesh.services.scheduler!.proc;
      scheduler.kill("SIGSTOP");
      await mesh.restart("conductor");
      const deleting = ids.map((id) => as("sent", () => conductor.deleteServer({ id })));
      await until("deletes recorded", async () => {
        const states = await Promise.all(
          ids.map(async (id) => (await as("sent", () => conductor.getServer({ id }))).server?.taskState),
        );
        return states.every((t) => t === "deleting");
      });
      scheduler.kill("SIGCONT");
      await Promise.all(deleting);
      // DeleteServer may return before its DeleteCommand is sent (a run a result or the sweep
      // started took the deleting build first and tears it down), and a sent command reaches the
      // host through JetStream later still: wait for the deletes to arrive.
      await until("every delete command at its host", async () =>
        ids.every((id) => agent.deletes.some((d) => d.serverId === id)),
      );
      for (const id of ids) {
        const hosts = new Set(agent.deletes.filter((d) => d.serverId === id).map((d) => d.host));
        expect([...hosts]).toEqual([first.get(id)]);
      }
      for (const s of await waitAll(conductor, ids)) expect(s.status).toBe("DELETED");
      for (const id of ids) expect(await allocationsOf(placement, id)).toEqual([]);
    });
  }, 300_000);

  it("share the builds; one dying mid-flight is covered by the other (lease expiry)", async () => {
    await replicas(5);
  }, 300_000);

  // A replica's new builds start leased to it (it runs them without a lease write of its own):
  // those it accepted and never began are the other's once that lease runs out.
  it("builds one replica accepted and died before beginning are built by the other", async () => {
    await replicas(0);
  }, 300_000);
});
