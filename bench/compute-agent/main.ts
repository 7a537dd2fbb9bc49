// Compute-agent benchmark: one agent process with 1,000 simulated hosts (zero spawn delay) on a
// real nats-server and scheduler. Prints how long registering every compute node in placement
// takes, and build throughput / latency (command published → BuildResult received) with a
// bounded number of builds in flight.
//   node --import tsx bench/compute-agent/main.ts [hosts=1000] [builds=2000] [inflight=64]
import { randomUUID } from "node:crypto";
import { type Mesh, startMesh } from "@stratus/runtime/testing";
import { agentClient, Recorder } from "../../test/compute-agent/helpers.js";

const hosts = Number(process.argv[2] ?? 1000);
const builds = Number(process.argv[3] ?? 2000);
const inflight = Number(process.argv[4] ?? 64);

const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? 0;
};

let mesh: Mesh | undefined;
let rec: Recorder | undefined;
try {
  mesh = await startMesh({
    services: ["scheduler", "compute-agent"],
    env: { LOG_LEVEL: "warn" },
    serviceEnv: {
      "compute-agent": { COMPUTE_HOSTS: `bench-[1-${hosts}]`, COMPUTE_PHYSNETS: "bench-*=physnet-1" },
    },
  });
  const agentUp = performance.now();
  const agent = agentClient(mesh.url("compute-agent"));
  for (;;) {
    const { hosts: hs } = await agent.listHosts({});
    if (hs.every((h) => h.placementRegistered)) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  const registerMs = performance.now() - agentUp;
  console.log(`registration: ${hosts} hosts in placement ${registerMs.toFixed(0)} ms after the agent served`);

  rec = await Recorder.start(mesh.nats);
  const latencies: number[] = [];
  const started = performance.now();
  let next = 0;
  const worker = async () => {
    while (next < builds) {
      const i = next++;
      const serverId = randomUUID();
      const t0 = performance.now();
      await rec?.build({ serverId, host: `bench-${(i % hosts) + 1}`, vcpus: 1n, memoryMb: 512n, diskGb: 1n });
      const r = await rec?.result(serverId, 1, 1, 60_000);
      if (!r?.success) throw new Error(`build failed: ${r?.error}`);
      latencies.push(performance.now() - t0);
    }
  };
  await Promise.all(Array.from({ length: inflight }, worker));
  const seconds = (performance.now() - started) / 1000;
  console.log(
    `builds: ${builds} with ${inflight} in flight: ${(builds / seconds).toFixed(0)} builds/s, ` +
      `p50 ${pct(latencies, 50).toFixed(1)} ms, p99 ${pct(latencies, 99).toFixed(1)} ms (publish → BuildResult)`,
  );
} finally {
  await rec?.close();
  await mesh?.close();
}
