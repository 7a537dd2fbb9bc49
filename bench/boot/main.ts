// Boot benchmark: servers to ACTIVE per second and p50/p99 time to ACTIVE, on networks: none and
// on a routed network, with many simulated hosts (zero spawn delay) and a bounded number of
// requests in flight; plus the cost of a reschedule (extra milliseconds, port creations).
//   node --import tsx bench/boot/main.ts
// Env: BENCH_HOSTS (default 1000), BENCH_SERVERS (default 1000), BENCH_IN_FLIGHT (default 64),
//      BENCH_RESCHEDULES (default 50), BENCH_WARMUP (default 128: servers booted first, uncounted), BENCH_BACKEND (pglite | postgres; default pglite: each
//      service on its own embedded database, or on its own temporary PostgreSQL database).
//      BENCH_TOPOLOGY=cluster: the one-machine cluster instead (startCluster: a 3-node NATS
//      cluster, BENCH_REPLICAS (2) of each control-plane service on PostgreSQL, BENCH_AGENTS (10)
//      agent processes of BENCH_HOSTS_PER_AGENT (10) hosts on their own embedded databases); the
//      creates alternate between the conductor replicas, and CPU is summed per service.
import { readFileSync } from "node:fs";
import { fromBinary } from "@bufbuild/protobuf";
import { NetworkMode } from "@stratus/contracts/compute/v1";
import { PortChange, PortChangedSchema, ServerStateChangedSchema } from "@stratus/contracts/events/v1";
import { NetworkService } from "@stratus/contracts/network/v1";
import { Subjects, serviceClient } from "@stratus/runtime";
import {
  createTempDatabase,
  keepOutputs,
  type Mesh,
  type ServiceProcess,
  startCluster,
  startMesh,
  TEST_POSTGRES_URL,
  type TempDatabase,
} from "@stratus/runtime/testing";
import pg from "pg";
import { as, clients, until } from "../../test/conductor/helpers.js";
import { profileEnv, startProfiles } from "../support/profile-window.js";

const TOPOLOGY = process.env.BENCH_TOPOLOGY ?? "single";
if (TOPOLOGY !== "single" && TOPOLOGY !== "cluster") throw new Error("BENCH_TOPOLOGY: single or cluster");
const CLUSTER = TOPOLOGY === "cluster";
const AGENTS = Number(process.env.BENCH_AGENTS ?? 10);
const HOSTS_PER_AGENT = Number(process.env.BENCH_HOSTS_PER_AGENT ?? 10);
const HOSTS = CLUSTER ? AGENTS * HOSTS_PER_AGENT : Number(process.env.BENCH_HOSTS ?? 1000);
const SERVERS = Number(process.env.BENCH_SERVERS ?? 1000);
const IN_FLIGHT = Number(process.env.BENCH_IN_FLIGHT ?? 64);
const RESCHEDULES = Number(process.env.BENCH_RESCHEDULES ?? 50);
const WARMUP = Number(process.env.BENCH_WARMUP ?? 128);
const BACKEND = CLUSTER ? "postgres" : (process.env.BENCH_BACKEND ?? "pglite");
// BENCH_CPU_PROF_DIR=<dir> (single topology): each service writes a CPU profile of the measured
// window of a case (not its warm-up) to <dir>/<service>; with one case in BENCH_CASES.
const PROF_DIR = CLUSTER ? undefined : process.env.BENCH_CPU_PROF_DIR;
const half = Math.ceil(HOSTS / 2);

const databases: (TempDatabase & { service: string })[] = [];
const db = async (service: string): Promise<Record<string, string>> => {
  if (BACKEND !== "postgres") return {};
  const d = await createTempDatabase("stratus_bench");
  databases.push({ ...d, service });
  return { DATABASE_URL: d.url };
};

/** What the benchmark needs of the processes it drives, whichever the topology. */
interface Topology {
  conductorUrls: string[];
  schedulerUrl: string;
  networkUrl: string;
  /** Each process to count CPU of, by the name its CPU is summed under. */
  processes(): { name: string; pid: number | undefined }[];
  /** The databases whose PostgreSQL backends count, by service. */
  databases: { service: string; url: string }[];
  nats: { connect(role: "tools"): ReturnType<Mesh["nats"]["connect"]> };
  outputs(): [string, string[]][];
  close(): Promise<void>;
}

const conductorEnv = { QUOTA_INSTANCES: "100000", QUOTA_CORES: "100000", QUOTA_RAM_MB: "100000000" };
const logLevel = process.env.BENCH_LOG_LEVEL ?? "warn";

async function single(): Promise<Topology> {
  // The harness starts the identity with this process's environment (no serviceEnv): every
  // service inherits the preload, and those below profile into their own directories instead.
  Object.assign(process.env, profileEnv(PROF_DIR, "identity"));
  const mesh = await startMesh({
    services: ["scheduler", "network-adapter", "conductor", "compute-agent"],
    env: { LOG_LEVEL: logLevel },
    serviceEnv: {
      scheduler: { ...(await db("scheduler")), ...profileEnv(PROF_DIR, "scheduler") },
      "network-adapter": {
        ...(await db("network-adapter")),
        QUOTA_PORT: "-1",
        ...profileEnv(PROF_DIR, "network-adapter"),
      },
      conductor: { ...(await db("conductor")), ...conductorEnv, ...profileEnv(PROF_DIR, "conductor") },
      "compute-agent": {
        ...profileEnv(PROF_DIR, "compute-agent"),
        COMPUTE_HOSTS: `rack1-[1-${half}],rack2-[1-${HOSTS - half}]`,
        COMPUTE_PHYSNETS: "rack1-*=physnet-rack1,rack2-*=physnet-rack2",
        SPAWN_DELAY_MS: "0",
        ...(await db("compute-agent")),
      },
    },
  });
  return {
    conductorUrls: [mesh.url("conductor")],
    schedulerUrl: mesh.url("scheduler"),
    networkUrl: mesh.url("network-adapter"),
    processes: () => [
      ...Object.entries(mesh.services).map(([name, p]) => ({ name, pid: p?.proc.pid })),
      { name: "nats-server", pid: mesh.nats.pid },
    ],
    databases,
    nats: mesh.nats,
    outputs: () => Object.entries(mesh.services).map(([name, p]) => [name, p!.output]),
    close: () => mesh.close(),
  };
}

async function cluster(): Promise<Topology> {
  const replicas = Number(process.env.BENCH_REPLICAS ?? 2);
  const c = await startCluster({
    replicas,
    agents: AGENTS,
    hostsPerAgent: HOSTS_PER_AGENT,
    env: { LOG_LEVEL: logLevel },
    serviceEnv: {
      conductor: conductorEnv,
      "network-adapter": { QUOTA_PORT: "-1" },
      "compute-agent": { SPAWN_DELAY_MS: "0" },
    },
  });
  const named = (name: string, list: ServiceProcess[]) => list.map((p, i) => ({ name, pid: p.proc.pid, i }));
  return {
    conductorUrls: c.replicas.conductor.map((p) => p.url),
    schedulerUrl: c.replicas.scheduler[0]!.url,
    networkUrl: c.replicas["network-adapter"][0]!.url,
    processes: () => [
      ...named("identity", c.identities),
      ...Object.entries(c.replicas).flatMap(([name, list]) => named(name, list)),
      ...named("compute-agent", c.agents),
      ...c.nats.nodePids.map((pid) => ({ name: "nats-server", pid })),
    ],
    databases: [...c.databases],
    nats: c.nats,
    outputs: () => [
      ...Object.entries(c.replicas).flatMap(([name, list]) =>
        list.map((p, i): [string, string[]] => [`${name}-${i}`, p.output]),
      ),
      ...c.agents.map((p, i): [string, string[]] => [`compute-agent-${i + 1}`, p.output]),
    ],
    close: () => c.close(),
  };
}

const mesh = CLUSTER ? await cluster() : await single();

let pgBackends: { pid: number; service: string }[] = [];
const findBackends = async () => {
  if (!mesh.databases.length) return;
  const c = new pg.Client({ connectionString: TEST_POSTGRES_URL });
  await c.connect();
  const names = mesh.databases.map((d) => new URL(d.url).pathname.slice(1));
  const rows = await c.query<{ pid: number; datname: string }>(
    "SELECT pid, datname FROM pg_stat_activity WHERE datname = ANY($1)",
    [names],
  );
  await c.end();
  pgBackends = rows.rows.map((r) => ({
    pid: r.pid,
    service: mesh.databases[names.indexOf(r.datname)]!.service,
  }));
};

/** user + system CPU ms of a process, from /proc (Linux); undefined when it is gone. */
const procCpuMs = (pid: number): number | undefined => {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100; // clock ticks of 10 ms
  } catch {
    return undefined;
  }
};

/**
 * user + system CPU ms of each service process, of the nats-server and of this process (the
 * load generator: its Connect calls and the events it follows).
 */
const cpuMs = (): Record<string, number> => {
  const out: Record<string, number> = {};
  for (const { name, pid } of mesh.processes()) {
    const ms = pid === undefined ? undefined : procCpuMs(pid);
    if (ms !== undefined) out[name] = (out[name] ?? 0) + ms;
  }
  const own = process.cpuUsage();
  out.bench = (own.user + own.system) / 1000;
  return out;
};

/**
 * CPU of the PostgreSQL backends serving our databases over a case. Pools open and close
 * connections as they go (an idle one closes after a while), and a backend that exited takes its
 * counter with it: the backends are sampled through the case, each counted from its first sample
 * (0 for one that appeared during the case) to its last.
 */
const backendCpu = () => {
  const seen = new Map<number, { service: string; first: number; last: number }>();
  const sample = (first: boolean) => {
    for (const { pid, service } of pgBackends) {
      const ms = procCpuMs(pid);
      if (ms === undefined) continue;
      const s = seen.get(pid);
      if (s) s.last = ms;
      else seen.set(pid, { service, first: first ? ms : 0, last: ms });
    }
  };
  let round = 0;
  let stopped = false;
  const ready = findBackends().then(() => sample(true));
  const timer = setInterval(() => {
    // Ask PostgreSQL for new backends every second; read the known ones' counters 4 times a second.
    if (++round % 4 === 0) void findBackends().then(() => !stopped && sample(false));
    else sample(false);
  }, 250);
  return {
    ready,
    async stop(): Promise<Record<string, number>> {
      clearInterval(timer);
      await findBackends();
      sample(false);
      stopped = true;
      const out: Record<string, number> = {};
      for (const s of seen.values()) {
        out[`postgres:${s.service}`] = (out[`postgres:${s.service}`] ?? 0) + s.last - s.first;
      }
      return out;
    },
  };
};

const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? Number.NaN;
};

try {
  const { placement } = clients(mesh.conductorUrls[0]!, mesh.schedulerUrl);
  const conductors = mesh.conductorUrls.map((url) => clients(url, mesh.schedulerUrl).conductor);
  let turn = 0;
  const net = serviceClient(NetworkService, mesh.networkUrl);
  const nc = await mesh.nats.connect("tools");
  const active = new Map<string, () => void>();
  const settled = new Map<string, string>();
  let portsCreated = 0;
  const sub = nc.subscribe(Subjects.serverState(">"));
  void (async () => {
    for await (const m of sub) {
      const e = fromBinary(ServerStateChangedSchema, m.data);
      if (e.status === "ACTIVE" || e.status === "ERROR") {
        settled.set(e.serverId, e.status);
        active.get(e.serverId)?.();
      }
    }
  })();
  const portSub = nc.subscribe(Subjects.portCreated);
  void (async () => {
    for await (const m of portSub)
      if (fromBinary(PortChangedSchema, m.data).change === PortChange.CREATED) portsCreated++;
  })();

  const t = Date.now();
  await until(
    "hosts registered",
    async () => (await placement.listResourceProviders({})).providers.length >= HOSTS,
    600_000,
  );
  console.log(`${BACKEND}: ${HOSTS} hosts registered in ${((Date.now() - t) / 1000).toFixed(1)} s`);

  const { network } = await net.createNetwork({
    name: "routed",
    projectId: "admin",
    shared: true,
    segments: [
      { name: "rack1", networkType: "vlan", physicalNetwork: "physnet-rack1", segmentationId: 301 },
      { name: "rack2", networkType: "vlan", physicalNetwork: "physnet-rack2", segmentationId: 302 },
    ],
  });
  const seg = Object.fromEntries(network!.segments.map((s) => [s.name, s.id]));
  await net.createSubnet({ networkId: network!.id, segmentId: seg.rack1!, cidr: "10.64.0.0/16" });
  await net.createSubnet({ networkId: network!.id, segmentId: seg.rack2!, cidr: "10.65.0.0/16" });
  await until("hosts mapped", async () => (await net.listHostSegments({})).mappings.length >= HOSTS, 600_000);

  async function run(
    label: string,
    count: number,
    mode: NetworkMode,
    metadata: Record<string, string> = {},
    inFlight = IN_FLIGHT,
  ) {
    const times: number[] = [];
    let next = 0;
    let errors = 0;
    const backends = backendCpu();
    await backends.ready;
    const stopProfiles = label.includes("warm-up")
      ? async () => {}
      : startProfiles(PROF_DIR, mesh.processes());
    const started = Date.now();
    const cpu0 = cpuMs();
    const one = async () => {
      const t0 = performance.now();
      let done!: () => void;
      const waiting = new Promise<void>((r) => {
        done = r;
      });
      const conductor = conductors[turn++ % conductors.length]!;
      const res = await as("bench", () =>
        conductor.createServers({
          name: "b",
          flavorId: "1",
          networkMode: mode,
          networks: mode === NetworkMode.LIST ? [{ networkId: network!.id }] : [],
          metadata,
        }),
      );
      const id = res.servers[0]!.id;
      if (!settled.has(id)) {
        active.set(id, done);
        await waiting;
        active.delete(id);
      }
      if (settled.get(id) !== "ACTIVE") errors++;
      times.push(performance.now() - t0);
    };
    await Promise.all(
      Array.from({ length: inFlight }, async () => {
        while (next < count) {
          next++;
          await one();
        }
      }),
    );
    const secs = (Date.now() - started) / 1000;
    const cpu1 = { ...cpuMs(), ...(await backends.stop()) };
    await stopProfiles();
    // CPU time each service process spent per server (user + system): steadier than rates on a
    // shared machine, and it says where the time goes.
    const cpuMsPerServer = Object.fromEntries(
      Object.keys(cpu1).map((k) => [k, Number(((cpu1[k]! - (cpu0[k] ?? 0)) / count).toFixed(2))]),
    );
    const fig = {
      label,
      servers: count,
      perSecond: Number((count / secs).toFixed(1)),
      p50ms: Math.round(pct(times, 50)),
      p99ms: Math.round(pct(times, 99)),
      errors,
      cpuMsPerServer,
    };
    console.log(JSON.stringify(fig));
    return fig;
  }

  // BENCH_CASES (default "none,routed,reschedule") picks what runs, e.g. to profile one case.
  const cases = (process.env.BENCH_CASES ?? "none,routed,reschedule").split(",");
  // Each case first boots WARMUP servers the same way, not counted: the first builds of fresh
  // processes run while five JITs compile their hot paths, and would set the p99.
  if (cases.includes("none")) {
    if (WARMUP) await run("none, warm-up (not counted)", WARMUP, NetworkMode.NONE);
    await run("none", SERVERS, NetworkMode.NONE);
  }
  if (cases.includes("routed")) {
    if (WARMUP) await run("routed, warm-up (not counted)", WARMUP, NetworkMode.LIST);
    await run("routed", SERVERS, NetworkMode.LIST);
  }
  if (cases.includes("reschedule")) {
    const before = portsCreated;
    // One at a time, so that the difference is what one reschedule costs a build, not queueing.
    const plain = await run("routed, no reschedule", RESCHEDULES, NetworkMode.LIST, {}, 1);
    const mid = portsCreated;
    const resched = await run(
      "routed, first host fails",
      RESCHEDULES,
      NetworkMode.LIST,
      { fake_fail_attempts: "1" },
      1,
    );
    console.log(
      JSON.stringify({
        rescheduleExtraMsP50: resched.p50ms - plain.p50ms,
        portCreationsPerServerPlain: (mid - before) / RESCHEDULES,
        portCreationsPerServerRescheduled: (portsCreated - mid) / RESCHEDULES,
      }),
    );
  }
  await nc.close();
} finally {
  // BENCH_LOG_DIR=<dir> keeps each service's output (LOG_LEVEL is warn unless BENCH_LOG_LEVEL).
  keepOutputs(process.env.BENCH_LOG_DIR, mesh.outputs());
  await mesh.close();
  for (const d of databases) await d.drop();
}
