// GET /limits: compute limits from the conductor; below 2.36 also the network limits (floating
// IPs, security groups, rules) read from the network-adapter's quotas.
import { StratusError } from "@stratus/runtime";
import type { ApiDeps } from "../deps.js";
import type { Router } from "../http/router.js";
import { at } from "../microversion.js";
import { queryParam } from "./common.js";

export function limitRoutes(router: Router, deps: ApiDeps): void {
  router.add("GET", "/limits", async (req) => {
    const asked = queryParam(req, "tenant_id");
    const projectId = asked ?? req.caller.projectId;
    if (projectId !== req.caller.projectId && !req.caller.isAdmin) {
      throw new StratusError(
        "forbidden",
        "Policy doesn't allow os_compute_api:limits:other_project to be performed.",
      );
    }
    const withNetwork = !at(req.version, "networkLimitsRemoved");
    const [compute, network] = await Promise.all([
      deps.conductor.getLimits({ projectId }),
      withNetwork ? deps.network.getQuotas({ projectId }) : undefined,
    ]);
    const absolute: Record<string, number> = {
      maxTotalInstances: compute.maxInstances,
      maxTotalCores: compute.maxCores,
      maxTotalRAMSize: compute.maxRamMb,
      maxServerMeta: compute.maxMetadataItems,
      maxTotalKeypairs: compute.maxKeyPairs,
      maxServerGroups: compute.maxServerGroups,
      maxServerGroupMembers: compute.maxServerGroupMembers,
      maxPersonality: 5,
      maxPersonalitySize: 10240,
      totalInstancesUsed: compute.instancesUsed,
      totalCoresUsed: compute.coresUsed,
      totalRAMUsed: compute.ramMbUsed,
      totalServerGroupsUsed: 0,
    };
    if (!at(req.version, "imageMetaLimitRemoved")) absolute.maxImageMeta = compute.maxMetadataItems;
    if (network) {
      absolute.maxTotalFloatingIps = network.floatingIps;
      absolute.totalFloatingIpsUsed = network.floatingIpsUsed;
      absolute.maxSecurityGroups = network.securityGroups;
      absolute.totalSecurityGroupsUsed = network.securityGroupsUsed;
      absolute.maxSecurityGroupRules = network.securityGroupRules;
    }
    return { status: 200, body: { limits: { rate: [], absolute } } };
  });
}
