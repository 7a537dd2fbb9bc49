// compute-agent: runs many simulated hosts with the fake virt driver; registers them in
// placement and with the network-adapter; heartbeats; handles build/delete commands from
// JetStream; serves ComputeAgentService.

import { fromBinary } from "@bufbuild/protobuf";
import { timestampNow } from "@bufbuild/protobuf/wkt";
import {
  BuildCommandSchema,
  DeleteCommandSchema,
  ServiceHeartbeatSchema,
} from "@stratus/contracts/events/v1";
import { NetworkService } from "@stratus/contracts/network/v1";
import { PlacementService } from "@stratus/contracts/scheduler/v1/placement";
import {
  bootService,
  type DurableConsumer,
  openServiceDatabase,
  peerUrl,
  Streams,
  Subjects,
  serviceClient,
  storageSettings,
} from "@stratus/runtime";
import { z } from "zod";
import { CommandHandler } from "./commands/commands.js";
import { forEachLimited } from "./concurrency.js";
import { FakeDriver } from "./driver/fake.js";
import { FaultInjector } from "./driver/faults.js";
import { expandHostPattern } from "./hosts/host-spec.js";
import { parsePhysnets, physnetsFor } from "./hosts/physnets.js";
import { HostRegistrar, simulatedHosts } from "./hosts/registration.js";
import { computeAgentPolicy } from "./rpc/compute-agent-policy.js";
import { computeAgentService } from "./rpc/compute-agent-service.js";

const parses = (parse: (v: string) => unknown) => (v: string) => {
  try {
    parse(v);
    return true;
  } catch {
    return false;
  }
};

const booted = await bootService({
  name: "compute-agent",
  defaultPort: 9104,
  config: {
    ...storageSettings({ service: "compute-agent" }),
    COMPUTE_HOSTS: z
      .string()
      .default("compute-1")
      .refine(
        (v) => parses(expandHostPattern)(v) && expandHostPattern(v).length > 0,
        "must be host names or name-[from-to] ranges, comma-separated",
      )
      .describe("Simulated hosts, e.g. rack1-[1-4],rack2-[1-4]"),
    COMPUTE_VCPUS: z.coerce.number().int().min(1).default(16).describe("VCPUs of each simulated host"),
    COMPUTE_MEMORY_MB: z.coerce
      .number()
      .int()
      .min(1024)
      .default(32768)
      .describe("Memory (MB) of each simulated host; 512 of it is reserved for the host"),
    COMPUTE_DISK_GB: z.coerce.number().int().min(1).default(500).describe("Disk (GB) of each simulated host"),
    COMPUTE_PHYSNETS: z
      .string()
      .default("")
      .refine(parses(parsePhysnets), "must be glob=physnet[+physnet],... e.g. rack1-*=physnet-rack1")
      .describe("Physical networks per host glob, first match wins"),
    SPAWN_DELAY_MS: z.coerce
      .number()
      .int()
      .min(0)
      .default(0)
      .describe("Fake driver spawn time in ms (InjectFaults overrides per host)"),
    COMPUTE_BUILD_CONCURRENCY: z.coerce
      .number()
      .int()
      .min(1)
      .max(1024)
      .default(16)
      .describe("Build/delete commands handled at once per host"),
    COMPUTE_REGISTER_CONCURRENCY: z.coerce
      .number()
      .int()
      .min(1)
      .max(256)
      .default(16)
      .describe("Hosts registering in placement / reporting physnets at once"),
    SCHEDULER_URL: peerUrl.default("http://127.0.0.1:9102").describe("Scheduler (placement) RPC URL(s)"),
    NETWORK_URL: peerUrl.default("http://127.0.0.1:9103").describe("Network-adapter RPC URL(s)"),
    HEARTBEAT_INTERVAL_MS: z.coerce.number().int().min(100).default(10_000).describe("Heartbeat period"),
  },
});
const { config, bus, lifecycle, logger } = booted;
const physnetRules = parsePhysnets(config.COMPUTE_PHYSNETS);
const hosts = simulatedHosts(
  expandHostPattern(config.COMPUTE_HOSTS),
  { vcpus: config.COMPUTE_VCPUS, memoryMb: config.COMPUTE_MEMORY_MB, diskGb: config.COMPUTE_DISK_GB },
  (host) => physnetsFor(physnetRules, host),
);
const hostNames = new Set(hosts.map((h) => h.name));

const db = await openServiceDatabase(
  booted,
  "compute-agent",
  new URL("../migrations", import.meta.url).pathname,
);
const faults = new FaultInjector(config.SPAWN_DELAY_MS);
const driver = new FakeDriver(db, faults, logger);
const placement = serviceClient(PlacementService, config.SCHEDULER_URL);
const network = serviceClient(NetworkService, config.NETWORK_URL);
const registrar = new HostRegistrar(hosts, placement, network, logger, {
  concurrency: config.COMPUTE_REGISTER_CONCURRENCY,
});
let stopping = false;
lifecycle.onShutdown("host registration", () => {
  stopping = true;
  registrar.stop();
});
const commands = new CommandHandler({ db, bus, driver, network, hosts: hostNames, logger });

const beat = (stopped = false) => {
  for (const host of hosts) {
    bus.publish(Subjects.heartbeat, ServiceHeartbeatSchema, {
      binary: "nova-compute",
      host: host.name,
      zone: "nova",
      at: timestampNow(),
      stopped,
    });
  }
};
beat();
const timer = setInterval(beat, config.HEARTBEAT_INTERVAL_MS);
lifecycle.onShutdown("heartbeats", async () => {
  clearInterval(timer);
  // Deregistration: the hosts are down at once (os-services, scheduling) rather than after the
  // conductor's SERVICE_DOWN_TIME_S. A lost message (core NATS) costs only that wait.
  beat(true);
  await bus.nc.flush();
});

await booted.serve([computeAgentService({ hosts, driver, faults, registrar })], {
  policies: [computeAgentPolicy],
});

try {
  void registrar.start().catch((err) => logger.error({ err }, "host registration stopped"));

  await commands.pruneOutcomes();
  const reported = await commands.reconcile();
  if (reported) logger.info({ instances: reported }, "reported the instances still running after a restart");

  // One durable consumer per host on its shard's stream (Streams.computeCommands): a command
  // reaches this process only if it runs the host, on the first delivery, and a host's builds and
  // deletes keep their order. Where an earlier version made the unsharded command stream, the
  // host has a consumer there too, for the commands of conductors of that version (a rolling
  // upgrade). Consumers of the shared layout before that (one for every agent, reading
  // everything) would keep per-host ones from being made on that work-queue stream: they go first.
  const sharded = Streams.computeCommands;
  const unsharded = Streams.computeCommandsUnsharded;
  const shared = await bus.removeConsumers(unsharded.name, (c) => /^host-/.test(c.name));
  if (shared?.length)
    logger.warn({ consumers: shared }, "removed command consumers of the shared layout (rolling upgrade)");
  const layouts = [
    { stream: sharded.streamOf, durable: sharded.hostConsumer, filter: sharded.hostFilter },
    ...(shared === undefined
      ? []
      : [{ stream: unsharded.streamOf, durable: unsharded.hostConsumer, filter: unsharded.hostFilter }]),
  ];
  const consumers: DurableConsumer[] = [];
  lifecycle.onShutdown("command consumers", () =>
    // Deregistration: each host's consumers go; commands not yet acknowledged stay in the stream
    // for the host's next agent.
    forEachLimited(consumers.splice(0), 32, (c) =>
      c.delete().catch((err) => logger.warn({ err, consumer: c.name }, "deleting a command consumer failed")),
    ),
  );
  const kinds = (host: string) =>
    new Map<string, "build" | "delete">([
      [Subjects.computeBuild(host), "build"],
      [Subjects.computeDelete(host), "delete"],
      [Subjects.computeBuildUnsharded(host), "build"],
      [Subjects.computeDeleteUnsharded(host), "delete"],
    ]);
  await forEachLimited(
    hosts.flatMap((h) => {
      const kind = kinds(h.name);
      return layouts.map((layout) => ({ host: h.name, layout, kind }));
    }),
    16,
    async ({ host, layout, kind }) => {
      if (stopping) return;
      consumers.push(
        await bus.consumeDurable({
          stream: layout.stream(host),
          durable: layout.durable(host),
          filterSubject: layout.filter(host),
          schema: BuildCommandSchema,
          concurrency: config.COMPUTE_BUILD_CONCURRENCY,
          batch: config.COMPUTE_BUILD_CONCURRENCY * 2,
          retryDelayMs: 500,
          maxDeliver: 50,
          handler: async (build, msg) => {
            const command = kind.get(msg.subject);
            if (command === "build") return commands.build(build, host);
            if (command === "delete") return commands.delete(fromBinary(DeleteCommandSchema, msg.data), host);
            logger.warn({ subject: msg.subject, host }, "unknown command subject; dropped");
          },
        }),
      );
    },
  );
  logger.info({ hosts: hosts.length }, "compute agent consuming build and delete commands");
} catch (err) {
  // Stopped while starting (the NATS connection drains): nothing to report.
  if (!stopping) throw err;
}
