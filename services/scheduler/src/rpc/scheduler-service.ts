// SchedulerService over Connect: translates the request spec and selections.
import type { MessageInitShape } from "@bufbuild/protobuf";
import { SchedulerService, type SelectionSchema, Weigher } from "@stratus/contracts/scheduler/v1/scheduler";
import { bindService, invalidInput, type ServiceBinding } from "@stratus/runtime";
import type { Scheduler, Selection } from "../scheduling/scheduler.js";
import { allocationsIn, allocationsOut, memberOfIn, resourcesIn } from "./convert.js";
import { groupsIn } from "./groups.js";

function selectionOut(s: Selection): MessageInitShape<typeof SelectionSchema> {
  return { host: s.host, computeNodeUuid: s.computeNodeUuid, allocations: allocationsOut(s.allocations) };
}

export function schedulerService(scheduler: Scheduler): ServiceBinding {
  return bindService(SchedulerService, {
    async selectDestinations(req) {
      const spec = req.spec;
      if (!spec) throw invalidInput("SelectDestinations needs a spec");
      const destinations = await scheduler.selectDestinations({
        instanceUuids: spec.instanceUuids,
        projectId: spec.projectId,
        userId: spec.userId,
        resources: resourcesIn(spec.resources),
        extraGroups: groupsIn(spec.extraGroups),
        requiredAggregates: memberOfIn(spec.requiredAggregates),
        requiredTraits: spec.requiredTraits,
        forbiddenTraits: spec.forbiddenTraits,
        ignoreHosts: spec.ignoreHosts,
        forceHosts: spec.forceHosts,
        weigher: spec.weigher === Weigher.PACK ? "pack" : "spread",
        maxAlternates: spec.maxAlternates,
      });
      return {
        destinations: destinations.map((d) => ({
          instanceUuid: d.instanceUuid,
          selected: selectionOut(d.selected),
          alternates: d.alternates.map(selectionOut),
        })),
      };
    },
    async claimSelection(req) {
      if (!req.selection) throw invalidInput("ClaimSelection needs a selection");
      const generation = await scheduler.claimSelection({
        consumerUuid: req.consumerUuid,
        projectId: req.projectId,
        userId: req.userId,
        selection: {
          host: req.selection.host,
          computeNodeUuid: req.selection.computeNodeUuid,
          allocations: allocationsIn(req.selection.allocations),
        },
      });
      return { consumerGeneration: BigInt(generation) };
    },
    async releaseClaims(req) {
      await scheduler.releaseClaims(req.consumerUuid);
      return {};
    },
  });
}
