// conductor: owns the compute database; orchestrates builds; serves ConductorService.
import { hostname } from "node:os";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import type { Client } from "@connectrpc/connect";
import { BuildResultSchema, DeleteResultSchema, ServiceHeartbeatSchema } from "@stratus/contracts/events/v1";
import { NetworkService } from "@stratus/contracts/network/v1";
import { PlacementService } from "@stratus/contracts/scheduler/v1/placement";
import { SchedulerService } from "@stratus/contracts/scheduler/v1/scheduler";
import {
  bootService,
  openServiceDatabase,
  peerUrl,
  StratusError,
  Streams,
  Subjects,
  serviceClient,
  storageSettings,
} from "@stratus/runtime";
import { z } from "zod";
import { Auditor } from "./audit/auditor.js";
import { Reconciler } from "./audit/reconciler.js";
import { Builder } from "./builds/builder.js";
import { registerQueueMetrics } from "./builds/metrics.js";
import { peersOver } from "./builds/peer-adapters.js";
import { ServerChanges } from "./compute/changes.js";
import { Flavors } from "./compute/flavors.js";
import { Quotas } from "./compute/quotas.js";
import { ServerAcceptance } from "./compute/server-acceptance.js";
import { Servers } from "./compute/servers.js";
import { conductorPolicy } from "./rpc/conductor-policy.js";
import { conductorService } from "./rpc/conductor-service.js";
import { ServiceRegistry } from "./services/service-registry.js";

const int = (fallback: number, min = 0) => z.coerce.number().int().min(min).default(fallback);

const booted = await bootService({
  name: "conductor",
  defaultPort: 9101,
  config: {
    // Its tables are analyzed as they double (servers created by the thousand): docs/performance.md.
    ...storageSettings({ service: "conductor", analyzeGrowth: 2 }),
    SERVICE_DOWN_TIME_S: int(60, 1).describe("Seconds without heartbeat before a service is down"),
    SCHEDULER_URL: peerUrl.default("http://127.0.0.1:9102").describe("Scheduler RPC URL(s)"),
    NETWORK_URL: peerUrl
      .optional()
      .describe("Network-adapter RPC URL(s) (needed unless every build is networks: none)"),
    MAX_ATTEMPTS: int(3, 1).describe(
      "Build attempts per server (first host + alternates), Nova's max_attempts",
    ),
    QUOTA_INSTANCES: int(10).describe("Default instances per project"),
    QUOTA_CORES: int(20).describe("Default cores per project"),
    QUOTA_RAM_MB: int(51200).describe("Default RAM (MiB) per project"),
    CONDUCTOR_ID: z
      .string()
      .optional()
      .describe("This replica's identity in build leases (default host:port)"),
    BUILD_LEASE_MS: int(30_000, 100).describe(
      "How long a replica holds a build step before another may take it over",
    ),
    BUILD_TIMEOUT_MS: int(180_000, 100).describe(
      "A build command with no result after this long fails its attempt",
    ),
    BUILD_DEADLINE_MS: int(600_000, 100).describe("A build not spawning after this long goes to ERROR"),
    BUILD_SWEEP_MS: int(5_000, 50).describe("How often to look for builds to resume"),
    BUILD_CONCURRENCY: int(64, 1).describe("Builds advanced at once by this replica"),
    BUILD_YIELD_CROWD: int(16).describe(
      "CreateServers calls in progress at once that make builds yield to accepting (0: never)",
    ),
    BUILD_YIELD_SUSTAIN_MS: int(50).describe(
      "How long a crowd of CreateServers callers must stay before builds yield to it",
    ),
    BUILD_YIELD_BACKLOG: int(64).describe(
      "Builds queued (not started) that, while CreateServers calls arrive, make builds yield to accepting (0: never)",
    ),
    BUILD_YIELD_CONCURRENCY: int(1, 1).describe("Builds advanced at once while they yield to accepting"),
    BUILD_YIELD_HOLD_MS: int(250).describe(
      "How long builds keep yielding after the last crowd of callers or call",
    ),
    SCHEDULE_BATCH: int(16, 1).describe(
      "Builds asking the scheduler the same question at once share one SelectDestinations call, up to this many",
    ),
    SCHEDULE_CALLS: int(4, 1).describe(
      "SelectDestinations calls in flight per request spec before builds batch",
    ),
    AUDIT_INTERVAL_S: int(300).describe(
      "How often the reconciler audits servers, placement and ports and reports each finding (0: never)",
    ),
    AUDIT_GRACE_S: int(60).describe(
      "The audit leaves ports, allocations and servers younger than this alone (writes still in progress)",
    ),
  },
});
const { config, bus, logger, lifecycle } = booted;
const db = await openServiceDatabase(booted, "conductor", new URL("../migrations", import.meta.url).pathname);

const registry = new ServiceRegistry(db, config.SERVICE_DOWN_TIME_S * 1000, undefined, 1000, (err) =>
  logger.warn({ err }, "writing heartbeats failed; kept for the next flush"),
);
lifecycle.onShutdown("heartbeats", () => registry.close());
bus.subscribe(
  Subjects.heartbeat,
  ServiceHeartbeatSchema,
  (hb) =>
    registry.recordHeartbeat({
      binary: hb.binary,
      host: hb.host,
      zone: hb.zone,
      disabled: hb.disabled,
      stopped: hb.stopped,
      at: hb.at ? timestampDate(hb.at) : new Date(),
    }),
  { queue: "conductor" },
);

let network: Client<typeof NetworkService> | undefined;
const placement = serviceClient(PlacementService, config.SCHEDULER_URL);
const changes = ServerChanges.over(bus);
const builder = new Builder({
  db,
  changes,
  logger,
  peers: peersOver({
    network: () => {
      if (!config.NETWORK_URL) throw new StratusError("unavailable", "no NETWORK_URL configured");
      network ??= serviceClient(NetworkService, config.NETWORK_URL);
      return network;
    },
    scheduler: serviceClient(SchedulerService, config.SCHEDULER_URL),
    placement,
    bus,
    logger,
    scheduleBatch: config.SCHEDULE_BATCH,
    scheduleCalls: config.SCHEDULE_CALLS,
    unschedulableHosts: () => registry.unschedulableHosts(),
  }),
  owner: config.CONDUCTOR_ID ?? `${hostname()}:${config.PORT}`,
  leaseMs: config.BUILD_LEASE_MS,
  buildTimeoutMs: config.BUILD_TIMEOUT_MS,
  buildDeadlineMs: config.BUILD_DEADLINE_MS,
  concurrency: config.BUILD_CONCURRENCY,
  yieldTo: {
    crowd: config.BUILD_YIELD_CROWD,
    sustainMs: config.BUILD_YIELD_SUSTAIN_MS,
    backlog: config.BUILD_YIELD_BACKLOG,
    concurrency: config.BUILD_YIELD_CONCURRENCY,
    holdMs: config.BUILD_YIELD_HOLD_MS,
  },
});
registerQueueMetrics(() => builder.queueState());
const servers = new Servers(db);
const auditor = new Auditor({
  db,
  placement: () => placement,
  network: () => {
    if (!config.NETWORK_URL) return undefined;
    network ??= serviceClient(NetworkService, config.NETWORK_URL);
    return network;
  },
  logger,
  graceMs: config.AUDIT_GRACE_S * 1000,
});
const quotas = new Quotas(db, {
  instances: config.QUOTA_INSTANCES,
  cores: config.QUOTA_CORES,
  ram: config.QUOTA_RAM_MB,
});

await booted.serve(
  [
    conductorService({
      servers,
      acceptance: new ServerAcceptance(db, quotas, servers),
      quotas,
      flavors: new Flavors(db),
      builder,
      registry,
      auditor,
      changes,
      maxAttempts: config.MAX_ATTEMPTS,
    }),
  ],
  { policies: [conductorPolicy] },
);

// Build results from compute agents: durable, shared by every conductor replica.
await bus.consumeDurable({
  stream: Streams.computeResults.name,
  durable: "conductor-results",
  filterSubject: Subjects.computeResult,
  schema: BuildResultSchema,
  concurrency: 32,
  retryDelayMs: 200,
  ackWaitMs: 15_000,
  maxDeliver: 1000,
  handler: async (r) => {
    const handled = await builder.onResult(r);
    if (!handled) throw new Error(`build of ${r.serverId} is busy; redeliver`);
  },
});
await bus.consumeDurable({
  stream: Streams.computeResults.name,
  durable: "conductor-deletes",
  filterSubject: Subjects.computeDeleted,
  schema: DeleteResultSchema,
  handler: async (r) => {
    if (!r.success)
      logger.warn({ serverId: r.serverId, host: r.host, error: r.error }, "compute delete failed");
  },
});

await builder.sweep(true);
const sweeper = setInterval(() => {
  builder.sweep().catch((err) => logger.warn({ err }, "build sweep failed"));
}, config.BUILD_SWEEP_MS);
lifecycle.onShutdown("build sweeper", async () => {
  clearInterval(sweeper);
  builder.stop();
});

// The reconciler: the audit every AUDIT_INTERVAL_S, each finding logged and published
// (stratus.audit.finding); it reports, `npm run audit -- --fix` repairs (docs/audit.md).
if (config.AUDIT_INTERVAL_S > 0) {
  const reconciler = new Reconciler({ auditor, bus, logger, intervalMs: config.AUDIT_INTERVAL_S * 1000 });
  reconciler.start();
  lifecycle.onShutdown("audit reconciler", () => reconciler.stop());
}
