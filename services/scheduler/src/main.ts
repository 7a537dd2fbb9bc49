// scheduler: owns placement; serves PlacementService and SchedulerService.
import { randomUUID } from "node:crypto";
import { AllocationChangedSchema, PlacementChangedSchema } from "@stratus/contracts/events/v1";
import { bootService, openServiceDatabase, Subjects, storageConfig } from "@stratus/runtime";
import { z } from "zod";
import type { AllocationNotifier } from "./placement/allocation-events.js";
import { AllocationCandidates } from "./placement/candidates/allocation-candidates.js";
import { Placement } from "./placement/placement.js";
import { placementService } from "./rpc/placement-service.js";
import { schedulerService } from "./rpc/scheduler-service.js";
import { Scheduler } from "./scheduling/scheduler.js";

const booted = await bootService({
  name: "scheduler",
  defaultPort: 9102,
  config: {
    ...storageConfig,
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
// Every claim rewrites its providers' inventory rows and generations, not in place (`free` is
// indexed), and every search and claim walks the dead versions until a VACUUM. On PGlite the
// runtime's autovacuum stand-in looks every 10 s; a scheduler at hundreds of claims a second
// leaves thousands by then, so here it looks every second (docs/performance.md, "Vacuum every
// second on PGlite"). On PostgreSQL it is autovacuum's work: a VACUUM there changes the tables'
// page counts, and every pooled connection then plans its statements again.
const db = await openServiceDatabase(
  booted,
  "scheduler",
  new URL("../migrations", import.meta.url).pathname,
  {
    pgliteAutovacuumMs: 1000,
  },
);
if (db.kind === "postgres") {
  // Without statistics the candidate query plans with default estimates (5x slower at 10,000
  // providers, bench/placement). On PGlite the runtime's autovacuum stand-in analyzes a table once
  // 10% of it changed (checked every second here, above). On PostgreSQL autovacuum does it, but
  // only after its naptime and when a worker is free: a freshly registered cloud was planned
  // without statistics (hashing every provider per condition, ~17 ms per search at 1,000 hosts in
  // the boot bench). The placement tables are small: analyze them at start and then every 10 s
  // (a few ms).
  let analyzing = false;
  const analyze = async () => {
    if (analyzing) return;
    analyzing = true;
    try {
      await db.query(
        "ANALYZE resource_providers, inventories, provider_aggregates, provider_traits, allocations",
      );
    } catch (err) {
      booted.logger.debug({ err }, "ANALYZE failed");
    } finally {
      analyzing = false;
    }
  };
  await analyze();
  const timer = setInterval(() => void analyze(), 10_000);
  timer.unref();
  booted.lifecycle.onShutdown("analyze", async () => clearInterval(timer));
}
const placement = new Placement(db);
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
await booted.serve([placementService(placement, candidates, notify), schedulerService(scheduler)]);
