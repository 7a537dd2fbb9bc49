// Watch benchmark: the live build-progress stream (ServerWatchService on the api) under a boot
// run. Boots servers (networks: none, zero spawn delay) with no watcher, then with BENCH_WATCHERS
// watchers of the booting project, alternating, and reports per run the boot rate and, with
// watchers, the events delivered per second to all of them, how many were missed (each watcher
// must see every state change of every server booted) and the delay from the conductor's write
// to a watcher's receipt.
//   npm run bench -- watch
// Env: BENCH_HOSTS (default 200), BENCH_SERVERS (default 1000 per run), BENCH_IN_FLIGHT (64),
//      BENCH_WATCHERS (100), BENCH_ROUNDS (2: without/with pairs), BENCH_WARMUP (128, uncounted),
//      BENCH_BACKEND (pglite | postgres; default pglite).
import { fromBinary } from "@bufbuild/protobuf";
import { timestampMs } from "@bufbuild/protobuf/wkt";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { NetworkMode } from "@stratus/contracts/compute/v1";
import { ServerWatchService } from "@stratus/contracts/compute/v1/server-watch";
import { ServerStateChangedSchema } from "@stratus/contracts/events/v1";
import { PlacementService } from "@stratus/contracts/scheduler/v1/placement";
import { Subjects, serviceClient } from "@stratus/runtime";
import { createTempDatabase, startMesh, type TempDatabase } from "@stratus/runtime/testing";
import { as, clients, until } from "../../test/conductor/helpers.js";

const HOSTS = Number(process.env.BENCH_HOSTS ?? 200);
const SERVERS = Number(process.env.BENCH_SERVERS ?? 1000);
const IN_FLIGHT = Number(process.env.BENCH_IN_FLIGHT ?? 64);
const WATCHERS = Number(process.env.BENCH_WATCHERS ?? 100);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 2);
const WARMUP = Number(process.env.BENCH_WARMUP ?? 128);
const BACKEND = process.env.BENCH_BACKEND ?? "pglite";
/** State changes of a build that goes straight to ACTIVE: scheduling, spawning, active. */
const CHANGES_PER_SERVER = 3;

const databases: TempDatabase[] = [];
const db = async (): Promise<Record<string, string>> => {
  if (BACKEND !== "postgres") return {};
  const d = await createTempDatabase("stratus_bench");
  databases.push(d);
  return { DATABASE_URL: d.url };
};

const mesh = await startMesh({
  services: ["scheduler", "network-adapter", "conductor", "compute-agent", "api"],
  env: { LOG_LEVEL: process.env.BENCH_LOG_LEVEL ?? "warn" },
  serviceEnv: {
    scheduler: await db(),
    "network-adapter": await db(),
    conductor: {
      ...(await db()),
      QUOTA_INSTANCES: "1000000",
      QUOTA_CORES: "1000000",
      QUOTA_RAM_MB: "1000000000",
    },
    "compute-agent": { ...(await db()), COMPUTE_HOSTS: `bench-[1-${HOSTS}]`, SPAWN_DELAY_MS: "0" },
  },
});

const pct = (xs: number[], p: number) => {
  if (!xs.length) return 0;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
};
const median = (xs: number[]) => pct(xs, 50);

try {
  const { conductor } = clients(mesh.url("conductor"), mesh.url("scheduler"));
  const placement = serviceClient(PlacementService, mesh.url("scheduler"));
  await until(
    "hosts registered",
    async () => (await placement.listResourceProviders({})).providers.length >= HOSTS,
    600_000,
  );
  const user = await mesh.token({ user: "bench-watcher", project: "bench-watch", roles: ["member"] });
  const project = user.projectId;

  // When each server settles, from the mesh's own events (the boot loop waits on them).
  const nc = await mesh.nats.connect("tools");
  const waiting = new Map<string, () => void>();
  const settled = new Map<string, string>();
  const sub = nc.subscribe(Subjects.serverState(">"));
  void (async () => {
    for await (const m of sub) {
      const e = fromBinary(ServerStateChangedSchema, m.data);
      if (e.status === "ACTIVE" || e.status === "ERROR") {
        settled.set(e.serverId, e.status);
        waiting.get(e.serverId)?.();
      }
    }
  })();

  async function boot(count: number) {
    let next = 0;
    let errors = 0;
    const ids: string[] = [];
    const started = Date.now();
    await Promise.all(
      Array.from({ length: IN_FLIGHT }, async () => {
        while (next < count) {
          next++;
          const res = await as(project, () =>
            conductor.createServers({ name: "w", flavorId: "1", networkMode: NetworkMode.NONE }),
          );
          const id = res.servers[0]!.id;
          ids.push(id);
          if (!settled.has(id)) await new Promise<void>((resolve) => waiting.set(id, resolve));
          waiting.delete(id);
          if (settled.get(id) !== "ACTIVE") errors++;
        }
      }),
    );
    return { ids, secs: (Date.now() - started) / 1000, errors };
  }

  /** WATCHERS watches of the project, each on its own HTTP/2 connection, counting what arrives. */
  async function startWatchers() {
    const abort = new AbortController();
    const watchers = Array.from({ length: WATCHERS }, () => ({
      events: new Map<string, number>(),
      delays: [] as number[],
    }));
    let ready = 0;
    const done = watchers.map(async (w) => {
      const client = createClient(ServerWatchService, createGrpcTransport({ baseUrl: mesh.url("api") }));
      try {
        for await (const r of client.watchServers(
          {},
          { signal: abort.signal, headers: { authorization: `Bearer ${user.token}` } },
        )) {
          if (!r.change) {
            ready++;
            continue;
          }
          w.events.set(r.change.serverId, (w.events.get(r.change.serverId) ?? 0) + 1);
          if (r.change.at) w.delays.push(Date.now() - timestampMs(r.change.at));
        }
      } catch (err) {
        if (!abort.signal.aborted) throw err;
      }
    });
    await until("watchers in place", async () => ready === WATCHERS, 60_000, 20);
    return { watchers, stop: () => abort.abort(), done };
  }

  async function runWith(label: string, watch: boolean) {
    const w = watch ? await startWatchers() : undefined;
    const b = await boot(SERVERS);
    const fig: Record<string, unknown> = {
      label,
      servers: SERVERS,
      bootPerSecond: Number((SERVERS / b.secs).toFixed(1)),
      errors: b.errors,
    };
    if (w) {
      const expected = b.ids.length * CHANGES_PER_SERVER;
      const received = () => w.watchers.map((x) => b.ids.reduce((n, id) => n + (x.events.get(id) ?? 0), 0));
      const deliveredDuringBoot = received().reduce((a, c) => a + c, 0);
      // Whatever is still on its way arrives within a few seconds; what does not is missed.
      await until(
        "every watcher has every change",
        async () => received().every((n) => n >= expected),
        30_000,
        50,
      ).catch(() => undefined);
      const counts = received();
      w.stop();
      await Promise.all(w.done);
      const delays = w.watchers.flatMap((x) => x.delays);
      Object.assign(fig, {
        watchers: WATCHERS,
        eventsDeliveredPerSecond: Math.round(deliveredDuringBoot / b.secs),
        eventsDelivered: counts.reduce((a, c) => a + c, 0),
        eventsMissed: counts.reduce((a, c) => a + Math.max(0, expected - c), 0),
        eventsExtra: counts.reduce((a, c) => a + Math.max(0, c - expected), 0),
        delayP50ms: Math.round(pct(delays, 50)),
        delayP99ms: Math.round(pct(delays, 99)),
      });
    }
    console.log(JSON.stringify(fig));
    return fig;
  }

  if (WARMUP > 0) await boot(WARMUP);
  const without: number[] = [];
  const withWatchers: number[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    without.push((await runWith("no watchers", false)).bootPerSecond as number);
    withWatchers.push((await runWith(`${WATCHERS} watchers`, true)).bootPerSecond as number);
  }
  const a = median(without);
  const c = median(withWatchers);
  console.log(
    JSON.stringify({
      summary: "boot rate, median of rounds",
      withoutWatchers: a,
      withWatchers: c,
      change: `${(((c - a) / a) * 100).toFixed(1)}%`,
    }),
  );
  await nc.close();
} finally {
  await mesh.close();
  for (const d of databases) await d.drop().catch(() => undefined);
}
