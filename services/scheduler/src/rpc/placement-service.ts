// PlacementService over Connect: translates messages and calls the placement core.
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { PlacementService } from "@stratus/contracts/scheduler/v1/placement";
import { bindService, invalidInput, type ServiceBinding } from "@stratus/runtime";
import type { AllocationNotifier } from "../placement/allocation-events.js";
import type { AllocationCandidates } from "../placement/candidates/allocation-candidates.js";
import type { Placement } from "../placement/placement.js";
import {
  allocationsIn,
  allocationsOut,
  int64In,
  inventoryOut,
  memberOfIn,
  providerOut,
  resourcesIn,
  resourcesOut,
} from "./convert.js";
import { groupsIn, policyIn } from "./groups.js";

export function placementService(
  placement: Placement,
  candidates: AllocationCandidates,
  notify: AllocationNotifier,
): ServiceBinding {
  const { providers, allocations } = placement;
  return bindService(PlacementService, {
    async createResourceProvider(req) {
      const provider = await providers.create({
        uuid: req.uuid,
        name: req.name,
        parentUuid: req.parentProviderUuid,
      });
      return { provider: providerOut(provider) };
    },
    async ensureResourceProvider(req) {
      const { provider, created } = await providers.ensure({
        uuid: req.uuid,
        name: req.name,
        parentUuid: req.parentProviderUuid,
      });
      return { provider: providerOut(provider), created };
    },
    async getResourceProvider(req) {
      return { provider: providerOut(await providers.get(req.uuid)) };
    },
    async listResourceProviders(req) {
      const found = await providers.list({
        name: req.name,
        memberOf: memberOfIn(req.memberOf),
        requiredTraits: req.requiredTraits,
        inTree: req.inTree,
        resources: resourcesIn(req.resources),
      });
      return { providers: found.map(providerOut) };
    },
    async deleteResourceProvider(req) {
      await providers.delete(req.uuid);
      return {};
    },
    async getInventories(req) {
      const { generation, inventories } = await providers.getInventories(req.providerUuid);
      return { providerGeneration: BigInt(generation), inventories: inventories.map(inventoryOut) };
    },
    async setInventories(req) {
      const { generation, inventories } = await providers.setInventories(
        req.providerUuid,
        int64In(req.providerGeneration, "provider generation"),
        req.inventories.map((i) => ({
          resourceClass: i.resourceClass,
          total: int64In(i.total, "total"),
          reserved: int64In(i.reserved, "reserved"),
          minUnit: int64In(i.minUnit, "min_unit"),
          maxUnit: int64In(i.maxUnit, "max_unit"),
          stepSize: int64In(i.stepSize, "step_size"),
          allocationRatio: i.allocationRatio,
        })),
      );
      return { providerGeneration: BigInt(generation), inventories: inventories.map(inventoryOut) };
    },
    async getAggregates(req) {
      const { generation, aggregates } = await providers.getAggregates(req.providerUuid);
      return { providerGeneration: BigInt(generation), aggregateUuids: aggregates };
    },
    async setAggregates(req) {
      const { generation, aggregates } = await providers.setAggregates(
        req.providerUuid,
        int64In(req.providerGeneration, "provider generation"),
        req.aggregateUuids,
      );
      return { providerGeneration: BigInt(generation), aggregateUuids: aggregates };
    },
    async getTraits(req) {
      const { generation, traits } = await providers.getTraits(req.providerUuid);
      return { providerGeneration: BigInt(generation), traits };
    },
    async setTraits(req) {
      const { generation, traits } = await providers.setTraits(
        req.providerUuid,
        int64In(req.providerGeneration, "provider generation"),
        req.traits,
      );
      return { providerGeneration: BigInt(generation), traits };
    },
    async getUsages(req) {
      const usages = await allocations.usages({
        providerUuid: req.providerUuid,
        projectId: req.projectId,
        userId: req.userId,
      });
      return { usages: resourcesOut(usages) };
    },
    async getAllocations(req) {
      const held = await allocations.get(req.consumerUuid);
      return {
        allocations: allocationsOut(held.allocations),
        projectId: held.projectId,
        userId: held.userId,
        consumerGeneration: BigInt(held.consumerGeneration),
      };
    },
    async putAllocations(req) {
      const written = await allocations.put({
        consumerUuid: req.consumerUuid,
        allocations: allocationsIn(req.allocations),
        projectId: req.projectId,
        userId: req.userId,
        expectedGeneration: int64In(req.consumerGeneration, "consumer generation"),
      });
      notify({
        consumerUuid: req.consumerUuid,
        providerUuids: written.providerUuids,
        claimed: req.allocations.length > 0,
        host: "",
      });
      return { consumerGeneration: BigInt(written.consumerGeneration) };
    },
    async deleteAllocations(req) {
      const written = await allocations.delete(req.consumerUuid);
      if (written.providerUuids.length) {
        notify({
          consumerUuid: req.consumerUuid,
          providerUuids: written.providerUuids,
          claimed: false,
          host: "",
        });
      }
      return {};
    },
    async listConsumers() {
      const consumers = await allocations.listConsumers();
      return {
        consumers: consumers.map((c) => ({
          uuid: c.uuid,
          projectId: c.projectId,
          userId: c.userId,
          generation: BigInt(c.consumerGeneration),
          updatedAt: timestampFromDate(c.updatedAt),
          allocations: allocationsOut(c.allocations),
        })),
      };
    },
    async listAllocationCandidates(req) {
      if (req.limit < 0) throw invalidInput("limit must not be negative");
      const result = await candidates.list({
        groups: groupsIn(req.groups),
        groupPolicy: policyIn(req.groupPolicy),
        limit: req.limit || undefined,
      });
      return {
        candidates: result.candidates.map((c) => ({ allocations: allocationsOut(c.allocations) })),
        providerSummaries: result.summaries.map((s) => ({
          providerUuid: s.uuid,
          name: s.name,
          rootProviderUuid: s.rootUuid,
          traits: s.traits,
          resources: Object.fromEntries(
            Object.entries(s.resources).map(([rc, r]) => [
              rc,
              { capacity: BigInt(r.capacity), used: BigInt(r.used) },
            ]),
          ),
        })),
      };
    },
  });
}
