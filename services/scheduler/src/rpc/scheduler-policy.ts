// Who may call each SchedulerService RPC: the conductor, for its builds (as Nova's scheduler is
// called by nova-conductor only); no user.
import { SchedulerService } from "@stratus/contracts/scheduler/v1/scheduler";
import { allow, servicePolicy } from "@stratus/runtime";

export const schedulerPolicy = servicePolicy(SchedulerService, {
  selectDestinations: allow(undefined, "conductor"),
  claimSelection: allow(undefined, "conductor"),
  releaseClaims: allow(undefined, "conductor"),
});
