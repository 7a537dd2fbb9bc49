// scheduler: owns placement; serves PlacementService and SchedulerService.
import { PlacementService } from "@stratus/contracts/scheduler/v1/placement";
import { SchedulerService } from "@stratus/contracts/scheduler/v1/scheduler";
import { bindService, bootService, openServiceDatabase, storageConfig } from "@stratus/runtime";

const booted = await bootService({ name: "scheduler", defaultPort: 9102, config: { ...storageConfig } });
await openServiceDatabase(booted, "scheduler", new URL("../migrations", import.meta.url).pathname);
await booted.serve([bindService(PlacementService, {}), bindService(SchedulerService, {})]);
