// One agent per hypervisor: several compute-agent processes, each running a few hosts, against one
// conductor, scheduler and NATS. Every build reaches its host on the first delivery (one result
// per server, attempt 1, no redelivery on any host's consumer); an agent that stops cleanly takes
// its consumers away and its hosts are down at once, one killed is down after SERVICE_DOWN_TIME_S;
// no build is scheduled to a down host.
//
// Size: STRATUS_AGENTS_PROCESSES x STRATUS_AGENTS_HOSTS hosts, STRATUS_AGENTS_BUILDS builds
// (default 5 x 4, 100; the full size: 10 x 5, 500).
import { fromBinary } from "@bufbuild/protobuf";
import { NetworkMode } from "@stratus/contracts/compute/v1";
import { type BuildResult, BuildResultSchema } from "@stratus/contracts/events/v1";
import { Streams, Subjects } from "@stratus/runtime";
import {
  createTempDatabase,
  freePort,
  type Mesh,
  postgresAvailable,
  startMesh,
  startService,
  type TempDatabase,
} from "@stratus/runtime/testing";
import type { NatsConnection } from "nats";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { as, type ConductorClient, clients, until, waitAll } from "../conductor/helpers.js";
import { agentClient } from "./helpers.js";

const PROCESSES = Number(process.env.STRATUS_AGENTS_PROCESSES ?? 5);
const HOSTS = Number(process.env.STRATUS_AGENTS_HOSTS ?? 4);
const BUILDS = Number(process.env.STRATUS_AGENTS_BUILDS ?? 100);
const DOWN_TIME_S = 4;

interface Agent {
  hosts: string[];
  stop(signal?: NodeJS.Signals): Promise<unknown>;
}

let mesh: Mesh;
let conductor: ConductorClient;
const agents: Agent[] = [];
const databases: TempDatabase[] = [];
let tools: NatsConnection;
let asAgent: NatsConnection;
const results: BuildResult[] = [];

beforeAll(
  async () => {
    mesh = await startMesh({
      services: ["scheduler", "network-adapter", "conductor"],
      serviceEnv: {
        conductor: {
          QUOTA_INSTANCES: "100000",
          QUOTA_CORES: "100000",
          QUOTA_RAM_MB: "100000000",
          SERVICE_DOWN_TIME_S: String(DOWN_TIME_S),
        },
      },
    });
    ({ conductor } = clients(mesh.url("conductor"), mesh.url("scheduler")));
    tools = await mesh.nats.connect("tools");
    const sub = tools.subscribe(Subjects.computeResult);
    void (async () => {
      for await (const m of sub) results.push(fromBinary(BuildResultSchema, m.data));
    })();
    await tools.flush();
    asAgent = await mesh.nats.connect("compute-agent");
    const usePostgres = await postgresAvailable();
    // One at a time: a process starting takes most of a CPU for a few seconds.
    for (let i = 0; i < PROCESSES; i++) {
      agents.push(
        await (async () => {
          const hosts = Array.from({ length: HOSTS }, (_, h) => `hv${i}-${h + 1}`);
          const db = usePostgres ? await createTempDatabase("stratus_agents") : undefined;
          if (db) databases.push(db);
          const p = await startService("compute-agent", {
            ...mesh.env,
            PORT: String(await freePort()),
            COMPUTE_HOSTS: hosts.join(","),
            HEARTBEAT_INTERVAL_MS: "500",
            // Each process its own database (one per hypervisor): PostgreSQL, else its own PGlite.
            ...(db
              ? { DATABASE_URL: db.url, DB_POOL_SIZE: "2" }
              : { STRATUS_DATA_DIR: `${mesh.env.STRATUS_DATA_DIR}/a${i}` }),
          });
          await until(
            `agent ${i}'s hosts in placement`,
            async () => (await agentClient(p.url).listHosts({})).hosts.every((h) => h.placementRegistered),
            120_000,
          );
          return { hosts, stop: (signal?: NodeJS.Signals) => p.stop(signal) };
        })(),
      );
    }
    // A process takes up to a minute to start on a busy machine.
  },
  120_000 + PROCESSES * 60_000,
);

afterAll(async () => {
  await Promise.all(agents.map((a) => a.stop()));
  await tools?.close();
  await asAgent?.close();
  await mesh?.close();
  await Promise.all(databases.map((d) => d.drop()));
});

const commandConsumers = async () => {
  const jsm = await asAgent.jetstreamManager();
  const found = new Map<string, { stream: string; redelivered: number; pending: number }>();
  for (const { name } of Streams.computeCommands.shards) {
    for await (const c of jsm.consumers.list(name)) {
      found.set(c.name, {
        stream: c.stream_name,
        redelivered: c.num_redelivered,
        pending: c.num_ack_pending + c.num_pending,
      });
    }
  }
  return found;
};

const services = async () =>
  new Map((await conductor.listComputeServices({ binary: "nova-compute" })).services.map((s) => [s.host, s]));

/** Creates n servers (networks: none), 16 calls in flight, and waits until each has settled. */
async function boot(n: number, project: string) {
  const ids: string[] = [];
  let next = 0;
  await Promise.all(
    Array.from({ length: 16 }, async () => {
      while (next < n) {
        next++;
        const res = await as(project, () =>
          conductor.createServers({
            name: "vm",
            flavorId: "1",
            imageRef: "cirros",
            networkMode: NetworkMode.NONE,
          }),
        );
        ids.push(res.servers[0]!.id);
      }
    }),
  );
  return waitAll(conductor, ids, 240_000);
}

describe(`${PROCESSES} agent processes x ${HOSTS} hosts`, () => {
  it("each host has its own command consumer, and every host is up", async () => {
    const all = agents.flatMap((a) => a.hosts);
    const consumers = await commandConsumers();
    expect([...consumers.keys()].sort()).toEqual(
      all.map((h) => Streams.computeCommands.hostConsumer(h)).sort(),
    );
    // Each on its host's shard's stream, and the hosts spread over the shards.
    for (const h of all) {
      expect(consumers.get(Streams.computeCommands.hostConsumer(h))?.stream, h).toBe(
        Streams.computeCommands.streamOf(h),
      );
    }
    expect(new Set([...consumers.values()].map((c) => c.stream)).size).toBeGreaterThan(1);
    const up = await until("every host up", async () => {
      const s = await services();
      return all.every((h) => s.get(h)?.state === "up") && s;
    });
    expect(up.size).toBe(all.length);
  });

  it(`${BUILDS} builds each reach their host on the first delivery`, async () => {
    const servers = await boot(BUILDS, "agents-many");
    expect(servers.filter((s) => s.status !== "ACTIVE").map((s) => `${s.id} ${s.status}`)).toEqual([]);
    await until("every result seen", async () =>
      servers.every((s) => results.some((r) => r.serverId === s.id)),
    );
    for (const s of servers) {
      const mine = results.filter((r) => r.serverId === s.id);
      // One command, one result: no timeout, no reschedule, no second attempt.
      expect(mine.map((r) => ({ attempt: r.attempt, host: r.host, success: r.success }))).toEqual([
        { attempt: 1, host: s.host, success: true },
      ]);
    }
    // Builds spread over the processes, and no host's consumer needed a redelivery.
    const used = new Set(servers.map((s) => s.host));
    expect(agents.filter((a) => a.hosts.some((h) => used.has(h))).length).toBe(PROCESSES);
    const consumers = await commandConsumers();
    for (const [name, c] of consumers) {
      expect({ name, redelivered: c.redelivered, pending: c.pending }).toEqual({
        name,
        redelivered: 0,
        pending: 0,
      });
    }
  }, 300_000);

  it("an agent that stops takes its consumers away, its hosts are down at once and get no builds", async () => {
    const [gone, killed] = [agents[0]!, agents[1]!];
    await gone.stop("SIGTERM");
    const down = await until(
      "the stopped agent's hosts down",
      async () => {
        const s = await services();
        return gone.hosts.every((h) => s.get(h)?.state === "down") && s;
      },
      // Well within SERVICE_DOWN_TIME_S: the stop said so, no heartbeat had to be missed.
      (DOWN_TIME_S * 1000) / 2,
    );
    for (const a of agents.slice(1)) for (const h of a.hosts) expect(down.get(h)?.state).toBe("up");
    const consumers = await commandConsumers();
    for (const h of gone.hosts) expect(consumers.has(Streams.computeCommands.hostConsumer(h))).toBe(false);

    // One that dies without stopping: down once its heartbeats are older than SERVICE_DOWN_TIME_S.
    await killed.stop("SIGKILL");
    await until(
      "the killed agent's hosts down",
      async () => {
        const s = await services();
        return killed.hosts.every((h) => s.get(h)?.state === "down");
      },
      (DOWN_TIME_S + 5) * 1000,
    );

    results.length = 0;
    const servers = await boot(Math.min(40, BUILDS), "agents-down");
    const downHosts = new Set([...gone.hosts, ...killed.hosts]);
    expect(servers.filter((s) => s.status !== "ACTIVE" || downHosts.has(s.host))).toEqual([]);
    await until("every result seen", async () =>
      servers.every((s) => results.some((r) => r.serverId === s.id)),
    );
    expect(results.filter((r) => r.attempt !== 1 || downHosts.has(r.host))).toEqual([]);
  }, 120_000);
});
