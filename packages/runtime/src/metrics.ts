// The process's Prometheus metrics (prom-client): one registry per process, served as text at
// GET /metrics on the service's RPC port (rpc/server.ts), every series labelled with the service.
// The RPC pipeline and the REST server record every call here; a service adds its own series
// (builds, queues, addresses, usage) with `metricsRegistry` as their register. Series whose value
// is read from elsewhere (a pool, a queue, a database) are computed when scraped (`collect`), so
// they cost nothing between scrapes.
import { collectDefaultMetrics, Gauge, Histogram, Registry } from "prom-client";

/** The registry of this process: every Stratus series and Node's own (process_*, nodejs_*). */
export const metricsRegistry = new Registry();

let started = false;
/** Labels every series with the service and starts Node's default metrics; once per process. */
export function startMetrics(service: string): void {
  if (started) return;
  started = true;
  metricsRegistry.setDefaultLabels({ service });
  collectDefaultMetrics({ register: metricsRegistry });
}

/** Latency buckets from 0.25 ms (a fast-path RPC) to 10 s (a build waiting on peers), seconds. */
export const LATENCY_BUCKETS = [
  0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
];

/** Every RPC a service answered, by protobuf service, method and gRPC code name ("OK" …). */
export const rpcServerDuration = new Histogram({
  name: "stratus_rpc_server_duration_seconds",
  help: "RPCs answered, by service, method and status code: time from the request to the answer",
  labelNames: ["rpc_service", "rpc_method", "code"] as const,
  buckets: LATENCY_BUCKETS,
  registers: [metricsRegistry],
});

/** Every REST request an edge answered, by edge, HTTP method and status code. */
export const restServerDuration = new Histogram({
  name: "stratus_rest_request_duration_seconds",
  help: "REST requests answered, by edge (compute, identity, network), method and status: time until the response was written",
  labelNames: ["edge", "method", "status"] as const,
  buckets: LATENCY_BUCKETS,
  registers: [metricsRegistry],
});

/** The text exposition of every series (Prometheus' format). */
export async function metricsText(): Promise<{ contentType: string; body: string }> {
  return { contentType: metricsRegistry.contentType, body: await metricsRegistry.metrics() };
}

/**
 * What `read` gives within `ms`, or undefined when it fails or takes longer: a scrape leaves out
 * what it cannot read soon rather than waiting on a slow peer.
 */
export function readWithin<T>(read: () => Promise<T>, ms: number): Promise<T | undefined> {
  return Promise.race([
    read().catch(() => undefined),
    new Promise<undefined>((r) => setTimeout(() => r(undefined), ms).unref()),
  ]);
}

/**
 * A gauge read from the service's database at each scrape: `query` returns rows whose `labels`
 * columns become the labels and whose `value` column the value. A scrape that finds the database
 * slow or failing leaves the gauge empty rather than waiting (`timeoutMs`).
 */
export function registerQueryGauge(options: {
  name: string;
  help: string;
  labelNames: readonly string[];
  query: () => Promise<Record<string, unknown>[]>;
  timeoutMs?: number;
}): void {
  new Gauge({
    name: options.name,
    help: options.help,
    labelNames: options.labelNames,
    registers: [metricsRegistry],
    async collect() {
      this.reset();
      const rows = await readWithin(options.query, options.timeoutMs ?? 2000);
      for (const row of rows ?? []) {
        const labels = Object.fromEntries(options.labelNames.map((l) => [l, String(row[l])]));
        this.set(labels, Number(row.value));
      }
    },
  });
}
