// Every service's metrics, scraped by a real Prometheus (Debian's prometheus package): each
// service's GET /metrics on its RPC port is up, and one server build moves the series an operator
// watches — RPC and REST latency by method and code, build steps and states, placement usage,
// IPAM addresses per segment, NATS consumer lag.
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { freePort, type Mesh, SERVICE_NAMES } from "@stratus/runtime/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  createRoutedNetwork,
  type NetworkClient,
  rest,
  startApiMesh,
  until,
  waitServer,
} from "../api/helpers.js";

const PROMETHEUS = "/usr/bin/prometheus";
const run = promisify(execFile);
const havePrometheus = await run(PROMETHEUS, ["--version"]).then(
  () => true,
  () => false,
);
if (!havePrometheus && process.env.CI) throw new Error(`${PROMETHEUS} is needed (Debian package prometheus)`);

let mesh: Mesh;
let net: NetworkClient;
let prometheus: ChildProcess | undefined;
let promUrl: string;
let dir: string;

/** One instant query's samples: labels and value. */
async function query(expr: string): Promise<{ metric: Record<string, string>; value: number }[]> {
  const res = await fetch(`${promUrl}/api/v1/query?query=${encodeURIComponent(expr)}`);
  const body = (await res.json()) as {
    status: string;
    data: { result: { metric: Record<string, string>; value: [number, string] }[] };
  };
  expect(body.status).toBe("success");
  return body.data.result.map((r) => ({ metric: r.metric, value: Number(r.value[1]) }));
}

/** Waits for a scrape newer than now, so that what just happened is in Prometheus. */
async function scrapedAfter(at: number): Promise<void> {
  await until(
    "a scrape of every service after the build",
    async () => {
      const up = await query("timestamp(up)");
      return up.length === SERVICE_NAMES.length && up.every((s) => s.value * 1000 > at);
    },
    30_000,
  );
}

beforeAll(async () => {
  if (!havePrometheus) return;
  ({ mesh, net } = await startApiMesh());
  dir = mkdtempSync(join(tmpdir(), "stratus-prometheus-"));
  const targets = SERVICE_NAMES.map((name) => ({
    targets: [new URL(mesh.url(name)).host],
    labels: { job: name },
  }));
  writeFileSync(join(dir, "targets.json"), JSON.stringify(targets));
  writeFileSync(
    join(dir, "prometheus.yml"),
    [
      "global: { scrape_interval: 1s, scrape_timeout: 900ms }",
      "scrape_configs:",
      "  - job_name: stratus",
      "    file_sd_configs: [{ files: [targets.json] }]",
      "",
    ].join("\n"),
  );
  const port = await freePort();
  promUrl = `http://127.0.0.1:${port}`;
  prometheus = spawn(
    PROMETHEUS,
    [
      `--config.file=${join(dir, "prometheus.yml")}`,
      `--storage.tsdb.path=${join(dir, "data")}`,
      `--web.listen-address=127.0.0.1:${port}`,
    ],
    { stdio: "ignore" },
  );
  await until(
    "prometheus ready",
    async () => (await fetch(`${promUrl}/-/ready`).catch(() => undefined))?.ok,
    60_000,
  );
}, 240_000);
afterAll(async () => {
  prometheus?.kill("SIGKILL");
  await mesh?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe.skipIf(!havePrometheus)("metrics scraped by Prometheus", () => {
  it("finds every service up, then sees one build move its series", async () => {
    await until(
      "every service scraped and up",
      async () => {
        const up = await query("up");
        return up.length === SERVICE_NAMES.length && up.every((s) => s.value === 1);
      },
      60_000,
    );
    const count = async (expr: string) => (await query(expr)).reduce((n, s) => n + s.value, 0);
    const before = {
      active: await count('stratus_build_states_total{vm_state="active"}'),
      creates: await count(
        'stratus_rest_request_duration_seconds_count{edge="compute",method="POST",status="202"}',
      ),
      createServers: await count(
        'stratus_rpc_server_duration_seconds_count{rpc_method="CreateServers",code="OK"}',
      ),
    };

    const network = await createRoutedNetwork(net, "p1", "metrics-net");
    const created = await rest(mesh.apiUrl, "POST", "/v2.1/servers", {
      version: "2.37",
      body: {
        server: {
          name: "observed",
          imageRef: "a9e6c1b4-5f0d-4c36-8a57-2f4f6b1c0c01",
          flavorRef: "1",
          networks: [{ uuid: network.id }],
        },
      },
    });
    expect(created.status).toBe(202);
    await waitServer(mesh.apiUrl, created.body.server.id);
    await scrapedAfter(Date.now());

    // REST at the edge, the RPC it made, the build's states and steps.
    expect(
      await count('stratus_rest_request_duration_seconds_count{edge="compute",method="POST",status="202"}'),
    ).toBe(before.creates + 1);
    expect(
      await count('stratus_rpc_server_duration_seconds_count{rpc_method="CreateServers",code="OK"}'),
    ).toBe(before.createServers + 1);
    expect(await count('stratus_build_states_total{vm_state="active"}')).toBe(before.active + 1);
    const steps = await query('sum by (step) (stratus_build_step_duration_seconds_count{outcome="ok"})');
    expect(steps.map((s) => s.metric.step).sort()).toEqual(
      expect.arrayContaining(["allocating", "binding", "scheduling"]),
    );
    // Refusals are counted by code: the scrape itself made none, an unauthenticated call does.
    const refused = await count('stratus_rpc_server_duration_seconds_count{code="Unauthenticated"}');
    const anonymous = await fetch(
      `${mesh.url("conductor")}/stratus.compute.v1.ConductorService/ListServers`,
      {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: "{}",
      },
    );
    expect(anonymous.status).toBe(401);
    await scrapedAfter(Date.now());
    expect(await count('stratus_rpc_server_duration_seconds_count{code="Unauthenticated"}')).toBe(
      refused + 1,
    );

    // The owners' gauges: placement holds the server's claim, the segment one address more in use.
    const used = await query('stratus_placement_resources{state="used"}');
    expect(used.find((s) => s.metric.resource_class === "VCPU")?.value).toBeGreaterThan(0);
    expect(used.find((s) => s.metric.resource_class === "IPV4_ADDRESS")?.value).toBeGreaterThan(0);
    const addresses = await query('stratus_ipam_segment_addresses{state="used"}');
    expect(addresses.reduce((n, s) => n + s.value, 0)).toBeGreaterThanOrEqual(1);
    expect((await query('stratus_ipam_segment_addresses{state="size"}')).length).toBeGreaterThanOrEqual(2);
    // The conductor's queue, and the NATS consumers services read (build results at the conductor).
    expect((await query('stratus_build_queue{job="conductor"}')).length).toBe(2);
    expect((await query('stratus_nats_consumer_messages{job="conductor"}')).length).toBeGreaterThan(0);
    // Node's own, labelled by service.
    expect((await query('process_cpu_seconds_total{service="scheduler"}')).length).toBe(1);
  });
});
