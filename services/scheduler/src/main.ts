// scheduler: owns placement; serves PlacementService and SchedulerService.
import { randomUUID } from "node:crypto";
import { AllocationChangedSchema, PlacementChangedSchema } from "@stratus/contracts/events/v1";
import {
  bootService,
  openServiceDatabase,
  registerQueryGauge,
  Subjects,
  storageSettings,
} from "@stratus/runtime";
import { z } from "zod";
import type { AllocationNotifier } from "./placement/allocation-events.js";
import { AllocationCandidates } from "./placement/candidates/allocation-candidates.js";
import { Placement } from "./placement/placement.js";
import { placementPolicy } from "./rpc/placement-policy.js";
import { placementService } from "./rpc/placement-service.js";
import { schedulerPolicy } from "./rpc/scheduler-policy.js";
import { schedulerService } from "./rpc/scheduler-service.js";
import { Scheduler } from "./scheduling/scheduler.js";

const booted = await bootService({
  name: "scheduler",
  defaultPort: 9102,
  config: {
    // Claims rewrite inventory rows all the time (PGlite's autovacuum stand-in looks every second,
    // not every 10 s), and a freshly registered cloud must not be searched without statistics
    // (its tables are analyzed as they double, on PostgreSQL too): docs/performance.md.
    ...storageSettings({ statisticsMs: 1000, analyzeGrowth: 2 }),
    SCHEDULER_MAX_ALTERNATES: z.coerce
      .number()
      .int()
      .min(0)
      .max(20)
      .default(2)
      .describe("Alternates returned per instance when the request does not say (Nova: max_attempts - 1)"),
    SCHEDULER_CANDIDATE_LIMIT: z.coerce
      .number()
      .int()
      .min(1)
      .max(1000)
      .default(100)
      .describe(
        "Allocation candidates fetched per scheduling round after the first, which takes instances + alternates + 8 hosts pre-ordered by free RAM/VCPU (Nova: max_placement_results)",
      ),
    SCHEDULER_POOL_TTL_MS: z.coerce
      .number()
      .int()
      .min(0)
      .max(60_000)
      .default(5000)
      .describe(
        "How long the hosts one candidate search found serve later SelectDestinations of the same shape, kept up to date with this scheduler's own claims; any other placement write, through any scheduler, drops them (0: a search per request)",
      ),
  },
});
const { config } = booted;
const db = await openServiceDatabase(booted, "scheduler", new URL("../migrations", import.meta.url).pathname);
const placement = new Placement(db);
// Placement's usage and capacity by resource class, read at each scrape (Placement's own
// arithmetic: capacity = (total - reserved) * allocation_ratio).
registerQueryGauge({
  name: "stratus_placement_resources",
  help: "Placement resources over all providers, by resource class: used (allocated) and capacity ((total - reserved) x allocation ratio)",
  labelNames: ["resource_class", "state"],
  query: () =>
    db.query(
      `SELECT resource_class, 'capacity' AS state, sum((total - reserved) * allocation_ratio) AS value
         FROM inventories GROUP BY resource_class
       UNION ALL
       SELECT resource_class, 'used' AS state, sum(used) AS value FROM allocations GROUP BY resource_class`,
    ),
});
{
  // Every scheduler process keeps pools of hosts for SelectDestinations (scheduling/host-pool.ts)
  // and drops them after a placement write through it; writes through the others reach it here
  // (coalesced per turn of the event loop: registering a cloud writes thousands of times).
  const origin = randomUUID();
  let announcing = false;
  placement.onWrite = () => {
    if (announcing) return;
    announcing = true;
    setImmediate(() => {
      announcing = false;
      booted.bus.publish(Subjects.placementChanged, PlacementChangedSchema, { origin });
    });
  };
  booted.bus.subscribe(Subjects.placementChanged, PlacementChangedSchema, (e) => {
    if (e.origin === origin) return;
    placement.writtenElsewhere();
    booted.logger.debug({ origin: e.origin }, "placement written through another scheduler: pools dropped");
  });
}
const candidates = new AllocationCandidates(db, () => placement.version);
const notify: AllocationNotifier = (change) =>
  booted.bus.publish(
    change.claimed ? Subjects.allocationClaimed : Subjects.allocationReleased,
    AllocationChangedSchema,
    change,
  );
const scheduler = new Scheduler(
  placement,
  candidates,
  {
    maxAlternates: config.SCHEDULER_MAX_ALTERNATES,
    candidateLimit: config.SCHEDULER_CANDIDATE_LIMIT,
    poolTtlMs: config.SCHEDULER_POOL_TTL_MS,
    // A PGlite data directory belongs to one process: on PGlite this scheduler is the only one,
    // and every placement write goes through it. A PostgreSQL database may be shared by other
    // scheduler replicas, whose writes this one only hears of by their events.
    soleWriterOfPlacement: db.kind === "pglite",
  },
  notify,
);
await booted.serve([placementService(placement, candidates, notify), schedulerService(scheduler)], {
  policies: [placementPolicy, schedulerPolicy],
});
