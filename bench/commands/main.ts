// Build commands through NATS alone: the conductor's publishes to H hosts, each host with its own
// durable consumer as a compute agent makes it (one agent connection), every command acknowledged.
// The sharded layout (Streams.computeCommands: a stream per shard) against the unsharded one of
// earlier versions (Streams.computeCommandsUnsharded: every host in one stream), alternately, a
// fresh nats-server (with the mesh's credentials) per round. Prints commands per second and the
// nats-server's CPU per command, minus what it spends idle with the same consumers.
//   npm run bench -- commands [hosts, default 1000] [commands per round, default 6000] [rounds per layout, default 3]
import { readFileSync } from "node:fs";
import { BuildCommandSchema } from "@stratus/contracts/events/v1";
import {
  createLogger,
  type DurableConsumer,
  EventBus,
  ensureStreams,
  instancesOf,
  Streams,
  Subjects,
  streamsOwnedBy,
} from "@stratus/runtime";
import { startNats } from "@stratus/runtime/testing";

const HOSTS = Number(process.argv[2] ?? 1000);
const COMMANDS = Number(process.argv[3] ?? 6000);
const ROUNDS = Number(process.argv[4] ?? 3);
const IN_FLIGHT = 64;

/** CPU ms a process has used so far (Linux /proc; clock ticks of 10 ms). */
function cpuMs(pid: number): number {
  const f = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
  return (Number(f[11]) + Number(f[12])) * 10;
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

const layouts = {
  sharded: { family: Streams.computeCommands, subject: Subjects.computeBuild },
  unsharded: { family: Streams.computeCommandsUnsharded, subject: Subjects.computeBuildUnsharded },
} as const;
type Layout = keyof typeof layouts;

async function round(layout: Layout) {
  const { family, subject } = layouts[layout];
  const nats = await startNats();
  const logger = createLogger("bench-commands", "warn");
  const conductor = new EventBus(await nats.connect("conductor"), logger);
  const agent = new EventBus(await nats.connect("compute-agent"), logger);
  const consumers: DurableConsumer[] = [];
  try {
    await ensureStreams(conductor.nc, streamsOwnedBy("conductor"));
    // The unsharded stream as an earlier version's conductor made it.
    if (layout === "unsharded") await ensureStreams(conductor.nc, [family]);
    const hosts = Array.from({ length: HOSTS }, (_, i) => `rack1-a${i}-1`);
    let acked = 0;
    let done!: () => void;
    const all = new Promise<void>((r) => {
      done = r;
    });
    for (const host of hosts) {
      consumers.push(
        await agent.consumeDurable({
          stream: family.streamOf(host),
          durable: family.hostConsumer(host),
          filterSubject: family.hostFilter(host),
          schema: BuildCommandSchema,
          concurrency: 16,
          batch: 32,
          handler: async () => {
            if (++acked === COMMANDS) done();
          },
        }),
      );
    }
    const pid = nats.pid!;
    await new Promise((r) => setTimeout(r, 2000));
    const idle0 = cpuMs(pid);
    await new Promise((r) => setTimeout(r, 4000));
    const idlePerMs = (cpuMs(pid) - idle0) / 4000;
    const cpu0 = cpuMs(pid);
    const t0 = performance.now();
    let next = 0;
    await Promise.all(
      Array.from({ length: IN_FLIGHT }, async () => {
        while (next < COMMANDS) {
          const i = next++;
          const host = hosts[i % HOSTS]!;
          await conductor.publishDurable(subject(host), BuildCommandSchema, {
            serverId: `s${i}`,
            host,
            attempt: 1,
          });
        }
      }),
    );
    await all;
    const ms = performance.now() - t0;
    const cpu = cpuMs(pid) - cpu0 - idlePerMs * ms;
    return {
      layout,
      streams: instancesOf(family).length,
      perSecond: Math.round(COMMANDS / (ms / 1000)),
      serverCpuMsPerCommand: Number((cpu / COMMANDS).toFixed(3)),
      serverIdleCpuMsPerS: Math.round(idlePerMs * 1000),
    };
  } finally {
    await Promise.all(consumers.map((c) => c.stop()));
    await agent.close();
    await conductor.close();
    await nats.stop();
  }
}

const figures: Record<Layout, Awaited<ReturnType<typeof round>>[]> = { sharded: [], unsharded: [] };
for (let r = 1; r <= ROUNDS; r++) {
  // Alternate which goes first.
  for (const layout of (r % 2 ? ["sharded", "unsharded"] : ["unsharded", "sharded"]) as Layout[]) {
    const f = await round(layout);
    figures[layout].push(f);
    console.log(JSON.stringify({ round: r, hosts: HOSTS, commands: COMMANDS, ...f }));
  }
}
for (const layout of Object.keys(figures) as Layout[]) {
  const fs = figures[layout];
  console.log(
    JSON.stringify({
      layout,
      medianPerSecond: median(fs.map((f) => f.perSecond)),
      medianServerCpuMsPerCommand: median(fs.map((f) => f.serverCpuMsPerCommand)),
    }),
  );
}
