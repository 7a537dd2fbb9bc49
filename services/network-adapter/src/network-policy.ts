// Who may call each NetworkService RPC (Neutron's default policies): a reader reads what its
// project may see, a member makes and changes its project's resources (the core keeps shared and
// external networks, segments and pools' sharing to admins), an admin does everything. As itself,
// the conductor makes, claims, binds and deletes a build's ports (acting for the build's user, whose
// visibility the core applies), and the compute agent checks ports and reports its hosts' physical
// networks.
import { NetworkService } from "@stratus/contracts/network/v1";
import { allow, servicePolicy } from "@stratus/runtime";

export const networkPolicy = servicePolicy(NetworkService, {
  createNetwork: allow("member"),
  getNetwork: allow("reader", "conductor"),
  listNetworks: allow("reader"),
  updateNetwork: allow("member"),
  deleteNetwork: allow("member"),

  createSegment: allow("admin"),
  getSegment: allow("admin"),
  listSegments: allow("admin"),
  updateSegment: allow("admin"),
  deleteSegment: allow("admin"),

  createSubnet: allow("member"),
  getSubnet: allow("reader", "conductor"),
  listSubnets: allow("reader"),
  updateSubnet: allow("member"),
  deleteSubnet: allow("member"),

  createSubnetPool: allow("member"),
  getSubnetPool: allow("reader"),
  listSubnetPools: allow("reader"),
  updateSubnetPool: allow("member"),
  deleteSubnetPool: allow("member"),

  createRouter: allow("member"),
  getRouter: allow("reader"),
  listRouters: allow("reader"),
  updateRouter: allow("member"),
  addRouterInterface: allow("member"),
  removeRouterInterface: allow("member"),
  deleteRouter: allow("member"),

  createPort: allow("member", "conductor"),
  getPort: allow("reader"),
  listPorts: allow("reader", "conductor"),
  updatePort: allow("member"),
  deletePort: allow("member", "conductor"),
  claimPort: allow("member", "conductor"),
  bindPort: allow("admin", "conductor"),
  unbindPort: allow("admin", "conductor"),
  checkAndUpdatePorts: allow(undefined, "compute-agent"),

  reportHostPhysicalNetworks: allow(undefined, "compute-agent"),
  listHostSegments: allow("admin"),

  listAvailableNetworks: allow("reader"),
  getAutoAllocatedTopology: allow("member", "conductor"),
  deleteAutoAllocatedTopology: allow("member"),

  getQuotas: allow("reader"),
  // Quotas as Neutron: a project's reader sees its own (the core refuses another project's to
  // non-admins); only an admin lists every project's or changes them.
  getQuota: allow("reader"),
  getDefaultQuota: allow("reader"),
  getQuotaDetails: allow("reader"),
  listQuotas: allow("admin"),
  updateQuota: allow("admin"),
  deleteQuota: allow("admin"),

  // The conductor's audit reads every port and address (docs/audit.md).
  listPortHoldings: allow("admin", "conductor"),
});
