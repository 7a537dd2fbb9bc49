// scheduler: owns placement; serves PlacementService and SchedulerService.
import { AllocationChangedSchema } from "@stratus/contracts/events/v1";
import { SchedulerService } from "@stratus/contracts/scheduler/v1/scheduler";
import { bindService, bootService, openServiceDatabase, Subjects, storageConfig } from "@stratus/runtime";
import type { AllocationNotifier } from "./placement/allocation-events.js";
import { AllocationCandidates } from "./placement/candidates.js";
import { Placement } from "./placement/placement.js";
import { placementService } from "./rpc/placement-service.js";

const booted = await bootService({ name: "scheduler", defaultPort: 9102, config: { ...storageConfig } });
const db = await openServiceDatabase(booted, "scheduler", new URL("../migrations", import.meta.url).pathname);
const placement = new Placement(db);
const candidates = new AllocationCandidates(db);
const notify: AllocationNotifier = (change) =>
  booted.bus.publish(
    change.claimed ? Subjects.allocationClaimed : Subjects.allocationReleased,
    AllocationChangedSchema,
    change,
  );
await booted.serve([placementService(placement, candidates, notify), bindService(SchedulerService, {})]);
