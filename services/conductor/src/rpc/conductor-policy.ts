// Who may call each ConductorService RPC (Nova's default policies): a reader reads its project's
// servers, flavors and limits, a member creates and deletes servers in its project, an admin manages
// flavors, sees the compute services and audits the mesh. No service calls the conductor as itself: the api acts for
// the user of each request.
import { ConductorService } from "@stratus/contracts/compute/v1";
import { allow, servicePolicy } from "@stratus/runtime";

export const conductorPolicy = servicePolicy(ConductorService, {
  createServers: allow("member"),
  getServer: allow("reader"),
  listServers: allow("reader"),
  deleteServer: allow("member"),
  listInstanceActions: allow("reader"),
  getInstanceAction: allow("reader"),
  listFlavors: allow("reader"),
  getFlavor: allow("reader"),
  createFlavor: allow("admin"),
  getLimits: allow("reader"),
  listComputeServices: allow("admin"),
  // The audit reads every owner's state and may repair it (docs/audit.md): admins and tools only.
  auditMesh: allow("admin"),
});
