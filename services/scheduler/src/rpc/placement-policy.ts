// Who may call each PlacementService RPC (Placement's default policy: admin, or a service): the
// compute agent registers its hosts' providers and inventories, the network-adapter keeps its
// segments' providers (inventories, traits, aggregates, deletion), the conductor reads a build's
// claim, audits every consumer and repairs what the audit may repair; the api reads inventories and usages for an admin's hypervisor views.
import { PlacementService } from "@stratus/contracts/scheduler/v1/placement";
import { allow, servicePolicy } from "@stratus/runtime";

export const placementPolicy = servicePolicy(PlacementService, {
  createResourceProvider: allow("admin"),
  ensureResourceProvider: allow("admin", "compute-agent", "network-adapter"),
  getResourceProvider: allow("admin", "conductor"),
  listResourceProviders: allow("admin"),
  deleteResourceProvider: allow("admin", "network-adapter"),
  getInventories: allow("admin", "compute-agent", "network-adapter"),
  setInventories: allow("admin", "compute-agent", "network-adapter"),
  getAggregates: allow("admin", "network-adapter"),
  setAggregates: allow("admin", "network-adapter"),
  getTraits: allow("admin", "network-adapter"),
  setTraits: allow("admin", "network-adapter"),
  getUsages: allow("admin"),
  getAllocations: allow("admin", "conductor"),
  // The conductor's audit repairs (AuditMesh with fix, itself admin only): heal_allocations and
  // the deletion of an orphan consumer's allocations (docs/audit.md).
  putAllocations: allow("admin", "conductor"),
  deleteAllocations: allow("admin", "conductor"),
  listAllocationCandidates: allow("admin"),
  // The conductor's audit reads every consumer (docs/audit.md).
  listConsumers: allow("admin", "conductor"),
});
