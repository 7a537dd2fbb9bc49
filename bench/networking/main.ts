// Networking API benchmark: POST /v2.0/ports on a routed network with BENCH_CLIENTS concurrent
// clients (each port bound to a host in the same request, so that its address comes from that
// host's segment, as a build's port gets it), then POST /v2.0/networks + POST /v2.0/subnets pairs,
// against the api and the network-adapter as processes (real NATS) over keep-alive HTTP/1.1.
//   npm run bench -- networking
// Env: BENCH_BACKEND (postgres: a throwaway PostgreSQL database for the network-adapter and the
//      scheduler via createTempDatabase; pglite: the embedded default), BENCH_CLIENTS (64),
//      BENCH_PORTS (20000 ports measured), BENCH_WARMUP (2000 ports first, not measured),
//      BENCH_NETWORKS (2000 network+subnet pairs), BENCH_PORT_MODE (host: binding:host_id in the
//      POST, an address from the host's segment; subnet: fixed_ips naming a segment's subnet;
//      deferred: no address until bound), BENCH_LOG_LEVEL (warn).
// Checks: every answer 201, no address handed out twice (from the answers and again from the
// list of the network's ports), every bound port's address on its host's segment.
import http from "node:http";
import { loadavg } from "node:os";
import { NetworkService } from "@stratus/contracts/network/v1";
import { serviceClient } from "@stratus/runtime";
import { createTempDatabase, startMesh, type TempDatabase } from "@stratus/runtime/testing";
import { load, pct } from "../support/load.js";

const CLIENTS = Number(process.env.BENCH_CLIENTS ?? 64);
const PORTS = Number(process.env.BENCH_PORTS ?? 20_000);
const WARMUP = Number(process.env.BENCH_WARMUP ?? 2000);
const NETWORKS = Number(process.env.BENCH_NETWORKS ?? 2000);
const MODE = process.env.BENCH_PORT_MODE ?? "host";
if (!["host", "subnet", "deferred"].includes(MODE))
  throw new Error("BENCH_PORT_MODE: host, subnet or deferred");
const BACKEND = process.env.BENCH_BACKEND ?? "postgres";
if (BACKEND !== "postgres" && BACKEND !== "pglite") throw new Error("BENCH_BACKEND: postgres or pglite");

const databases: TempDatabase[] = [];
const dbEnv = async (): Promise<Record<string, string>> => {
  if (BACKEND !== "postgres") return {};
  const db = await createTempDatabase("stratus_bench_networking");
  databases.push(db);
  return { DATABASE_URL: db.url };
};

const mesh = await startMesh({
  services: ["scheduler", "network-adapter", "api"],
  env: { LOG_LEVEL: process.env.BENCH_LOG_LEVEL ?? "warn" },
  serviceEnv: { scheduler: await dbEnv(), "network-adapter": await dbEnv() },
});
const base = new URL(mesh.networkApiUrl);
// An admin of the mesh's identity (binding:host_id is an admin's attribute); everything is made in
// its project. Its token is validated at the edge like any client's (locally, once per token).
const admin = await mesh.token({ user: "bench-admin", project: "bench", roles: ["admin"] });
const TOKEN = admin.token;
console.log(`backend ${BACKEND}, ${CLIENTS} clients, port mode ${MODE}`);

const agent = new http.Agent({ keepAlive: true, maxSockets: CLIENTS });
// biome-ignore lint/suspicious/noExplicitAny: the answers are JSON read by their known shape
function call(method: string, path: string, body?: unknown): Promise<{ status: number; body: any }> {
  const payload = body === undefined ? undefined : JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        agent,
        method,
        host: base.hostname,
        port: base.port,
        path,
        headers: {
          "x-auth-token": TOKEN,
          accept: "application/json",
          ...(payload === undefined
            ? {}
            : { "content-type": "application/json", "content-length": Buffer.byteLength(payload) }),
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => {
          const text = Buffer.concat(chunks).toString();
          let parsed: unknown = text;
          try {
            parsed = text ? JSON.parse(text) : undefined;
          } catch {
            // not JSON: kept as text
          }
          resolve({ status: res.statusCode ?? 0, body: parsed });
        });
        res.on("error", reject);
      },
    );
    req.on("error", reject);
    req.end(payload);
  });
}

async function must(method: string, path: string, status: number, body?: unknown) {
  const r = await call(method, path, body);
  if (r.status !== status) throw new Error(`${method} ${path}: ${r.status} ${JSON.stringify(r.body)}`);
  return r.body;
}

const figures = (what: string, n: number, r: { times: number[]; seconds: number }, errors: number) =>
  `${what}: ${n} in ${r.seconds.toFixed(1)} s, ${(n / r.seconds).toFixed(0)}/s, p50 ${pct(r.times, 50).toFixed(1)} ms, p99 ${pct(r.times, 99).toFixed(1)} ms, errors ${errors}; load average ${loadavg()[0]!.toFixed(1)}`;

try {
  // Unlimited quotas for the project the bench works in.
  await must("PUT", `/v2.0/quotas/${admin.projectId}`, 200, {
    quota: { network: -1, subnet: -1, port: -1, router: -1, subnetpool: -1 },
  });

  // The routed network: two VLAN segments on two physical networks, a /16 subnet on each, and a
  // host on each physical network (as compute agents report them).
  const network = (
    await must("POST", "/v2.0/networks", 201, {
      network: {
        name: "bench-routed",
        segments: [1, 2].map((rack) => ({
          "provider:network_type": "vlan",
          "provider:physical_network": `physnet-rack${rack}`,
          "provider:segmentation_id": 100 + rack,
        })),
      },
    })
  ).network;
  const segments: { id: string; physical_network: string }[] = (
    await must("GET", `/v2.0/segments?network_id=${network.id}`, 200)
  ).segments;
  const subnetOf = new Map<string, string>();
  for (const [i, seg] of segments.entries()) {
    const subnet = (
      await must("POST", "/v2.0/subnets", 201, {
        subnet: { network_id: network.id, segment_id: seg.id, cidr: `10.${i + 1}.0.0/16`, ip_version: 4 },
      })
    ).subnet;
    subnetOf.set(seg.physical_network, subnet.id);
  }
  const net = serviceClient(NetworkService, mesh.url("network-adapter"));
  const hosts = ["rack1-host", "rack2-host"];
  for (const [i, host] of hosts.entries()) {
    await net.reportHostPhysicalNetworks({ host, physicalNetworks: [`physnet-rack${i + 1}`] });
  }
  const hostSubnet = hosts.map((_, i) => subnetOf.get(`physnet-rack${i + 1}`)!);

  const portBody = (i: number) => {
    const port: Record<string, unknown> = { network_id: network.id, name: `p-${i}` };
    if (MODE === "host") port["binding:host_id"] = hosts[i % 2];
    if (MODE === "subnet") port.fixed_ips = [{ subnet_id: hostSubnet[i % 2] }];
    return { port };
  };
  const seen = new Map<string, string>();
  let duplicates = 0;
  let misplaced = 0;
  const createPorts = async (total: number, offset: number) => {
    let errors = 0;
    const r = await load(total, CLIENTS, async (k) => {
      const i = offset + k;
      const res = await call("POST", "/v2.0/ports", portBody(i));
      if (res.status !== 201) {
        if (errors++ < 3) console.log(`  POST /v2.0/ports: ${res.status} ${JSON.stringify(res.body)}`);
        return;
      }
      for (const f of res.body.port.fixed_ips as { subnet_id: string; ip_address: string }[]) {
        if (seen.has(f.ip_address)) duplicates++;
        seen.set(f.ip_address, res.body.port.id);
        if (MODE !== "deferred" && f.subnet_id !== hostSubnet[i % 2]) misplaced++;
      }
    });
    return { r, errors };
  };

  const warm = await createPorts(WARMUP, 0);
  console.log(figures("warm-up POST /v2.0/ports (not counted)", WARMUP, warm.r, warm.errors));
  const ports = await createPorts(PORTS, WARMUP);
  console.log(figures(`POST /v2.0/ports (routed, ${MODE})`, PORTS, ports.r, ports.errors));

  // The network's ports as the API lists them: each address once.
  const listed = new Set<string>();
  let listedPorts = 0;
  let listDuplicates = 0;
  let marker = "";
  for (;;) {
    const page = await must(
      "GET",
      `/v2.0/ports?network_id=${network.id}&fields=id&fields=fixed_ips&limit=1000${marker ? `&marker=${marker}` : ""}`,
      200,
    );
    for (const p of page.ports as { id: string; fixed_ips: { ip_address: string }[] }[]) {
      listedPorts++;
      for (const f of p.fixed_ips) {
        if (listed.has(f.ip_address)) listDuplicates++;
        listed.add(f.ip_address);
      }
    }
    if (page.ports.length < 1000) break;
    marker = page.ports.at(-1).id;
  }
  console.log(
    `check: ${seen.size} addresses handed out, duplicates ${duplicates} (answers) ${listDuplicates} (list of ${listedPorts} ports), off their host's segment ${misplaced}`,
  );

  // Network + subnet pairs.
  let netErrors = 0;
  const pairs = await load(NETWORKS, CLIENTS, async (i) => {
    const n = await call("POST", "/v2.0/networks", { network: { name: `n-${i}` } });
    if (n.status !== 201) {
      if (netErrors++ < 3) console.log(`  POST /v2.0/networks: ${n.status} ${JSON.stringify(n.body)}`);
      return;
    }
    const cidr = `172.${16 + (Math.floor(i / 256) % 16)}.${i % 256}.0/24`;
    const s = await call("POST", "/v2.0/subnets", {
      subnet: { network_id: n.body.network.id, cidr, ip_version: 4 },
    });
    if (s.status !== 201 && netErrors++ < 3) {
      console.log(`  POST /v2.0/subnets: ${s.status} ${JSON.stringify(s.body)}`);
    }
  });
  console.log(figures("POST /v2.0/networks + POST /v2.0/subnets (pairs)", NETWORKS, pairs, netErrors));
  if (duplicates || listDuplicates || misplaced || ports.errors || netErrors) process.exitCode = 1;
} finally {
  agent.destroy();
  await mesh.close();
  for (const db of databases) await db.drop();
}
