// Get me a network, Networking API side (the auto-allocated-topology extension):
// GET /v2.0/auto-allocated-topology/{project_id} makes the project's topology on the first call
// (the network-adapter makes it once: concurrent first calls get the same one) and answers its
// network; ?fields=dry-run only checks that it could be made: 409 AutoAllocationFailure with the
// reasons the compute API gives for --nic auto, else "dry-run=pass". DELETE takes it away.
import { StratusError } from "@stratus/runtime";
import type { NetworkDeps } from "./deps.js";
import { badRequest } from "./faults.js";
import type { NetRequest, NetRouter } from "./router.js";

/** Neutron's CHECK_REQUIREMENTS field. */
const DRY_RUN = "dry-run";

function topologyView(id: string, project: string) {
  return { auto_allocated_topology: { id, tenant_id: project, project_id: project } };
}

export function autoAllocatedTopologyRoutes(router: NetRouter, deps: NetworkDeps): void {
  router.add("GET", "/auto-allocated-topology/:project", async (req: NetRequest) => {
    const project = req.params.project!;
    const fields = req.query.getAll("fields").filter(Boolean);
    const dryRun = fields.includes(DRY_RUN);
    // As Neutron: dry-run is the one field this resource knows.
    if (!dryRun && fields.length) throw badRequest("Bad auto_allocate request: Unrecognized field.");
    const answer = await deps.network.getAutoAllocatedTopology({ projectId: project, dryRun });
    if (dryRun) {
      if (!answer.canAllocate) {
        // The reasons as the compute API gives them for --nic auto, in Neutron's exception.
        throw new StratusError("conflict", `Deployment error: ${answer.reasons.join("; ")}.`);
      }
      return { status: 200, body: topologyView("dry-run=pass", project) };
    }
    return { status: 200, body: topologyView(answer.networkId, project) };
  });
  router.add("DELETE", "/auto-allocated-topology/:project", async (req: NetRequest) => {
    await deps.network.deleteAutoAllocatedTopology({ projectId: req.params.project! });
    return { status: 204 };
  });
}
