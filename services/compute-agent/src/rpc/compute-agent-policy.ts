// Who may call each ComputeAgentService RPC: admins (the api's hypervisor views act for one); the
// fault knobs are an admin's too.
import { ComputeAgentService } from "@stratus/contracts/computeagent/v1";
import { allow, servicePolicy } from "@stratus/runtime";

export const computeAgentPolicy = servicePolicy(ComputeAgentService, {
  listHosts: allow("admin"),
  listInstances: allow("admin"),
  injectFaults: allow("admin"),
});
