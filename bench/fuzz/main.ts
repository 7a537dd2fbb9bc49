// Random requests over every route of the compute API (test/api/random-requests.ts: deep nesting,
// control characters, NUL, unpaired surrogates, huge integers, long strings, malformed ids),
// against the whole mesh as processes. Prints the answers by status class and by route, every
// 5xx, and every refused request (4xx) after which the mesh's state (servers, networks, ports,
// placement usages, read through the owners' RPCs) was not what it was before; at the end, the
// mesh audit's findings (docs/audit.md) once every build is over. Exits 1 when there was any 5xx,
// any such change or any finding.
//   npm run bench -- fuzz
// Env: FUZZ_REQUESTS (default 100000), FUZZ_CONCURRENCY (8: reads run side by side; a request
//      that may change state runs alone, on a settled mesh), FUZZ_SEED (fast-check's seed; default
//      random, printed).
import { ConductorService } from "@stratus/contracts/compute/v1";
import { NetworkService } from "@stratus/contracts/network/v1";
import { serviceClient } from "@stratus/runtime";
import { startMesh } from "@stratus/runtime/testing";
import fc from "fast-check";
import { asAdmin, createRoutedNetwork, HOSTS, until } from "../../test/api/helpers.js";
import { type MeshState, meshStateReader, settledState } from "../../test/api/mesh-state.js";
import { knownBreakers, type RandomRequest, randomRequest } from "../../test/api/random-requests.js";

const REQUESTS = Number(process.env.FUZZ_REQUESTS ?? 100_000);
const CONCURRENCY = Number(process.env.FUZZ_CONCURRENCY ?? 8);
const SEED = Number(process.env.FUZZ_SEED ?? Math.floor(Math.random() * 2 ** 31));
const IMAGE = "a9e6c1b4-5f0d-4c36-8a57-2f4f6b1c0c01";
const TOKENS = ["alice:p1", "alice:p1", "admin:admin"];

const mesh = await startMesh({
  env: { LOG_LEVEL: "warn" },
  serviceEnv: {
    // The audit at the end leaves nothing alone for being young: every build is over by then.
    conductor: { AUDIT_GRACE_S: "0" },
    "compute-agent": {
      COMPUTE_HOSTS: "rack1-[1-2],rack2-[1-2]",
      COMPUTE_PHYSNETS: "rack1-*=physnet-rack1,rack2-*=physnet-rack2",
    },
  },
});
try {
  const net = serviceClient(NetworkService, mesh.url("network-adapter"));
  const read = meshStateReader(mesh);
  await until(
    "hosts registered",
    async () => (await read()).usages.filter((u) => HOSTS.some((h) => u.startsWith(`${h}:`))).length === 4,
    90_000,
  );
  await createRoutedNetwork(net, "p1", "fuzz-routed");
  const target = await send({
    route: "POST /v2.1/servers",
    method: "POST",
    path: "/v2.1/servers",
    headers: {
      "content-type": "application/json",
      "openstack-api-version": "compute 2.37",
      "x-auth-token": "alice:p1",
    },
    body: JSON.stringify({
      server: { name: "fuzz-target", imageRef: IMAGE, flavorRef: "1", networks: "none" },
    }),
  });
  const { networks } = await asAdmin(() => net.listNetworks({}));
  const known = {
    image: IMAGE,
    serverIds: [JSON.parse(target.text).server.id as string],
    networkIds: networks.map((n) => n.id),
  };
  let state: MeshState = await settledState(read);

  // The requests that broke the API before, then random ones, made a thousand at a time (so that
  // servers created on the way are named by later requests).
  const arbitrary = randomRequest(known, TOKENS);
  const first = knownBreakers(known, "alice:p1");
  let batch: RandomRequest[] = [];
  const requestAt = (i: number): RandomRequest => {
    if (i < first.length) return first[i]!;
    const j = i - first.length;
    if (j % 1000 === 0) batch = fc.sample(arbitrary, { numRuns: 1000, seed: SEED + j });
    return batch[j % 1000]!;
  };
  const total = Math.max(REQUESTS, first.length);
  console.log(`${total} requests, seed ${SEED}, ${CONCURRENCY} at a time`);

  const byClass: Record<string, number> = {};
  const byRoute: Record<string, Record<string, number>> = {};
  const failures: string[] = [];
  const changes: string[] = [];
  const started = performance.now();
  let next = 0;
  let writing: Promise<void> | undefined;
  let readsInFlight = 0;
  let readsDone: (() => void) | undefined;

  /** One request; one that may change state waits for the reads in flight and runs alone. */
  const run = async (r: RandomRequest) => {
    while (writing) await writing;
    const mayWrite = r.method !== "GET";
    if (!mayWrite) {
      readsInFlight++;
      try {
        count(r, await send(r));
      } finally {
        if (--readsInFlight === 0) readsDone?.();
      }
      return;
    }
    let release!: () => void;
    writing = new Promise<void>((resolve) => {
      release = resolve;
    });
    try {
      if (readsInFlight > 0) await new Promise<void>((resolve) => (readsDone = resolve));
      readsDone = undefined;
      const res = await send(r);
      count(r, res);
      if (res.status >= 400 && res.status < 500) {
        const after = await read();
        if (JSON.stringify(after) !== JSON.stringify(state)) {
          changes.push(`${describe(r)} -> ${res.status}: ${diff(state, after)}`);
          state = await settledState(read);
        }
      } else if (res.status < 400) {
        const id = (JSON.parse(res.text || "{}") as { server?: { id?: string } }).server?.id;
        if (id) known.serverIds.push(id);
        state = await settledState(read);
      }
    } finally {
      writing = undefined;
      release();
    }
  };

  function count(r: RandomRequest, res: { status: number; text: string }) {
    const cls = `${Math.floor(res.status / 100)}xx`;
    byClass[cls] = (byClass[cls] ?? 0) + 1;
    const route = byRoute[r.route] ?? {};
    route[cls] = (route[cls] ?? 0) + 1;
    byRoute[r.route] = route;
    if (res.status >= 500) failures.push(`${describe(r)} -> ${res.status} ${res.text.slice(0, 300)}`);
  }

  const progressEvery = Math.max(1000, Math.floor(total / 20));
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next < total) {
        const i = next++;
        await run(requestAt(i));
        if ((i + 1) % progressEvery === 0) {
          console.log(`  ${i + 1} sent, ${((performance.now() - started) / 1000).toFixed(0)} s`);
        }
      }
    }),
  );

  const seconds = (performance.now() - started) / 1000;
  console.log(`\n${total} requests in ${seconds.toFixed(0)} s`);
  console.log("by status class:", JSON.stringify(byClass));
  console.log("by route:");
  for (const [route, classes] of Object.entries(byRoute).sort()) {
    console.log(`  ${route.padEnd(60)} ${JSON.stringify(classes)}`);
  }
  console.log(`5xx: ${failures.length}`);
  for (const f of failures.slice(0, 20)) console.log(`  ${f}`);
  console.log(`state changed after a 4xx: ${changes.length}`);
  for (const c of changes.slice(0, 20)) console.log(`  ${c}`);
  await settledState(read, 600_000);
  const { findings } = await serviceClient(ConductorService, mesh.url("conductor")).auditMesh({});
  console.log(`audit findings: ${findings.length}`);
  for (const f of findings.slice(0, 20)) console.log(`  ${f.kind} ${f.subject}: ${f.detail}`);
  process.exitCode = failures.length || changes.length || findings.length ? 1 : 0;
} finally {
  await mesh.close();
}

async function send(r: RandomRequest): Promise<{ status: number; text: string }> {
  const res = await fetch(`${mesh.apiUrl}${r.path}`, {
    method: r.method,
    headers: r.headers,
    ...(r.body === undefined ? {} : { body: r.body }),
  });
  return { status: res.status, text: await res.text() };
}

function describe(r: RandomRequest): string {
  return `${r.method} ${r.path.slice(0, 200)} ${r.body?.slice(0, 200) ?? ""}`.trim();
}

/** What differs between two states, briefly. */
function diff(before: MeshState, after: MeshState): string {
  const parts: string[] = [];
  for (const key of ["servers", "networks", "ports", "usages"] as const) {
    const gone = before[key].filter((x) => !after[key].includes(x));
    const added = after[key].filter((x) => !before[key].includes(x));
    if (gone.length || added.length) parts.push(`${key} -${gone.length} +${added.length}`);
  }
  return parts.join(", ") || "in flight";
}
