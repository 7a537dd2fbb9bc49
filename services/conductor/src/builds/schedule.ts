// Step 2, scheduling: SelectDestinations with the flavor's resources and the ports' segment
// constraints (design.md §2.3); the scheduler claims the chosen host and returns alternates. The
// outcome is not written here: the run defers it to the write after the build command's send
// (UnrecordedOutcome).
import { isStratusError, StratusError } from "@stratus/runtime";
import { type BuildRow, stepEvent } from "./build.js";
import type { BuildContext } from "./build-context.js";
import type { BuildRun } from "./build-run.js";
import { fail } from "./fail.js";
import type { ScheduleRequest } from "./peers.js";
import type { SelectionJson } from "./selection-json.js";
import { scheduledEarlier } from "./unrecorded-outcome.js";

export async function schedule(ctx: BuildContext, run: BuildRun): Promise<void> {
  const b = run.row;
  const started = new Date();
  let selected = await scheduledEarlier(ctx.destinations, b);
  let alternates: SelectionJson[] = [];
  if (!selected) {
    try {
      ({ selected, alternates } = await ctx.destinations.select(scheduleRequest(b)));
    } catch (err) {
      if (isStratusError(err, "no_valid_host")) {
        await fail(ctx, run, 500, err.message, "no_valid_host", {
          event: stepEvent("conductor_schedule_instances", started, false, "", err.message),
        });
        return;
      }
      throw err;
    }
  }
  if (!selected) throw new StratusError("internal", "scheduler returned no destination");
  run.defer({
    step: "scheduled",
    attempt: b.attempt + 1,
    selected,
    alternates,
    event: stepEvent("conductor_schedule_instances", started, true, selected.host),
  });
}

/** The question for the scheduler: the flavor, and an address for each routed network's ports. */
export function scheduleRequest(b: BuildRow): ScheduleRequest {
  const f = b.flavor;
  const resources: Record<string, bigint> = { VCPU: BigInt(f.vcpus), MEMORY_MB: BigInt(f.ramMb) };
  const disk = f.diskGb + f.ephemeralGb + Math.ceil(f.swapMb / 1024);
  if (disk > 0) resources.DISK_GB = BigInt(disk);
  // A routed port with no address yet needs one from a segment that shares with the host; one
  // that already holds an address pins the host to that address's segment.
  const requiredAggregates = b.ports
    .filter((p) => p.routed && p.heldSegment)
    .map((p) => ({ aggregateUuids: [p.heldSegment!] }));
  // One group per routed network: IPV4_ADDRESS:1 from a segment that shares with the host. A
  // second port on the same network adds no amount: segment providers have max_unit 1 (as in
  // Neutron), so 2 from one segment can never be claimed; its address is taken at bind and an
  // exhausted segment moves the build to an alternate.
  const groups = new Map<string, ScheduleRequest["extraGroups"][number]>();
  for (const p of b.ports.filter((x) => x.routed && !x.heldSegment && x.segmentIds.length)) {
    const key = [...p.segmentIds].sort().join(",");
    if (!groups.has(key))
      groups.set(key, {
        suffix: `PORT${p.slot}`,
        resources: { IPV4_ADDRESS: 1n },
        memberOf: [{ aggregateUuids: p.segmentIds }],
      });
  }
  return {
    serverId: b.server_id,
    projectId: b.project_id,
    userId: b.user_id,
    resources,
    extraGroups: [...groups.values()],
    requiredAggregates,
    ignoreHosts: b.failed_hosts,
    maxAlternates: Math.max(0, b.max_attempts - 1),
  };
}
