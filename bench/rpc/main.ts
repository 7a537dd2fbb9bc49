// RPC overhead: sequential unary calls whose work is one indexed SELECT
// (PlacementService.GetResourceProvider on a real scheduler process), with the mesh's short unary
// path (packages/runtime/src/fast-unary.ts) on both ends and with connect-es/connect-node on both
// ends (STRATUS_RPC_FAST=0), alternately, a fresh scheduler per round. Prints latency and the CPU
// per call of the caller (this process) and of the scheduler (from /proc); every call carries
// a token the scheduler checks. Then the authentication stage alone, in this process: the cost per
// call of a token already validated once (the case of every call but a token's first), a service
// acting as itself and a service acting for a user.
//   npm run bench -- rpc [calls per round, default 3000] [rounds per mode, default 3]
import { randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";
import { PlacementService } from "@stratus/contracts/scheduler/v1/placement";
import { createLogger, EventBus, serviceClient } from "@stratus/runtime";
import { identityServiceSource, LocalTokenValidator, RpcAuthentication } from "@stratus/runtime/auth";
import {
  createTempDatabase,
  meshIdentity,
  startNats,
  startService,
  type TestNats,
} from "@stratus/runtime/testing";
import { placementPolicy } from "../../services/scheduler/src/rpc/placement-policy.js";

const N = Number(process.argv[2] ?? 3000);
const ROUNDS = Number(process.argv[3] ?? 3);
const WARMUP = 3000;

/** CPU ms a process has used so far (Linux /proc; clock ticks of 10 ms). */
function cpuMs(pid: number): number {
  const f = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
  return (Number(f[11]) + Number(f[12])) * 10;
}
const pct = (s: number[], p: number) => s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

const nats = await startNats();
const db = await createTempDatabase("stratus_bench_rpc");
const results: Record<string, { p50: number[]; p99: number[]; client: number[]; server: number[] }> = {};
try {
  for (let round = 1; round <= ROUNDS; round++) {
    for (const mode of ["short path", "connect-es"]) {
      const fast = mode === "short path" ? "1" : "0";
      // The client side reads the switch when its transport is made (one per base URL).
      process.env.STRATUS_RPC_FAST = fast;
      const scheduler = await startService("scheduler", {
        NATS_URL: nats.url,
        DATABASE_URL: db.url,
        LOG_LEVEL: "warn",
        STRATUS_RPC_FAST: fast,
      });
      try {
        const placement = serviceClient(PlacementService, scheduler.url);
        const uuid = randomUUID();
        await placement.ensureResourceProvider({ uuid, name: `bench-${uuid}` });
        // Warm-up: the first few thousand calls of a fresh process run slower (JIT).
        for (let i = 0; i < WARMUP; i++) await placement.getResourceProvider({ uuid });
        const times: number[] = [];
        const pid = scheduler.proc.pid!;
        const server0 = cpuMs(pid);
        const client0 = process.cpuUsage();
        for (let i = 0; i < N; i++) {
          const t = performance.now();
          await placement.getResourceProvider({ uuid });
          times.push(performance.now() - t);
        }
        const client = process.cpuUsage(client0);
        const serverPerCall = (cpuMs(pid) - server0) / N;
        const clientPerCall = (client.user + client.system) / 1000 / N;
        times.sort((a, b) => a - b);
        results[mode] ??= { p50: [], p99: [], client: [], server: [] };
        const r = results[mode];
        r.p50.push(pct(times, 50));
        r.p99.push(pct(times, 99));
        r.client.push(clientPerCall);
        r.server.push(serverPerCall);
        console.log(
          `round ${round}, ${mode}: p50 ${pct(times, 50).toFixed(3)} ms, p99 ${pct(times, 99).toFixed(3)} ms, CPU per call: caller ${clientPerCall.toFixed(3)} ms, scheduler ${serverPerCall.toFixed(3)} ms`,
        );
      } finally {
        await scheduler.stop();
      }
    }
  }
  console.log(`\nmedians of ${ROUNDS} rounds of ${N} sequential GetResourceProvider calls:`);
  for (const [mode, r] of Object.entries(results)) {
    console.log(
      `  ${mode.padEnd(10)}  p50 ${median(r.p50).toFixed(3)} ms  p99 ${median(r.p99).toFixed(3)} ms  CPU per call: caller ${median(r.client).toFixed(3)} ms, scheduler ${median(r.server).toFixed(3)} ms`,
    );
  }
  await authenticationStage(nats);
} finally {
  await nats.stop();
  await db.drop();
}

/**
 * The pipeline's authentication stage as the scheduler runs it (its validator, fed by the
 * identity over RPC and NATS; its policies), on the headers of a conductor's call: the token
 * validated and the principal made, the method's policy applied. The first call of a token
 * verifies its signature; every later one is what this measures.
 */
async function authenticationStage(nats: TestNats): Promise<void> {
  const identity = await meshIdentity(nats);
  const logger = createLogger("bench", "warn");
  const bus = new EventBus(await nats.connect("tools"), logger);
  const validator = new LocalTokenValidator(identityServiceSource(identity.rpcUrl, bus), { logger });
  await validator.start();
  const auth = new RpcAuthentication(validator, [placementPolicy]);
  const token = await identity.serviceToken("conductor");
  const cases: [string, Headers][] = [
    ["a service as itself", new Headers({ authorization: `Bearer ${token}` })],
    [
      "a service acting for a user",
      new Headers({
        authorization: `Bearer ${token}`,
        "x-stratus-user-id": "u-1",
        "x-stratus-project-id": "p-1",
        "x-stratus-roles": "member,reader",
      }),
    ],
  ];
  const CALLS = 200_000;
  console.log("\nauthentication stage, a token already validated once, in this process:");
  for (const [label, headers] of cases) {
    for (let i = 0; i < 20_000; i++) await stage(auth, headers);
    const started = process.cpuUsage();
    const t = performance.now();
    for (let i = 0; i < CALLS; i++) await stage(auth, headers);
    const wall = (performance.now() - t) / CALLS;
    const cpu = process.cpuUsage(started);
    console.log(
      `  ${label.padEnd(28)} ${(wall * 1000).toFixed(2)} µs per call (CPU ${((cpu.user + cpu.system) / CALLS).toFixed(2)} µs)`,
    );
  }
  await validator.close();
  await bus.close();
}

async function stage(auth: RpcAuthentication, headers: Headers): Promise<void> {
  const principal = await auth.principalOf(headers);
  auth.authorize(principal, PlacementService.typeName, "GetResourceProvider");
}
