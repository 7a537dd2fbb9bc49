// ComputeAgentService: inspection of the simulated hosts and their instances, and the fake
// driver's fault injection knobs.
import { ComputeAgentService } from "@stratus/contracts/computeagent/v1";
import { bindService, notFound, type ServiceBinding } from "@stratus/runtime";
import type { VirtDriver } from "../driver/driver.js";
import type { FaultInjector } from "../driver/faults.js";
import type { HostRegistrar, SimulatedHost } from "../hosts/registration.js";

export function computeAgentService(deps: {
  hosts: SimulatedHost[];
  driver: VirtDriver;
  faults: FaultInjector;
  registrar: HostRegistrar;
}): ServiceBinding {
  const byName = new Map(deps.hosts.map((h) => [h.name, h]));
  const known = (host: string) => {
    if (!byName.has(host)) throw notFound(`compute host ${host} is not run by this agent`);
  };
  const hostOut = (h: SimulatedHost, running: number) => {
    const reg = deps.registrar.state.get(h.name);
    const f = deps.faults.get(h.name);
    return {
      name: h.name,
      computeNodeUuid: h.computeNodeUuid,
      vcpus: BigInt(h.vcpus),
      memoryMb: BigInt(h.memoryMb),
      diskGb: BigInt(h.diskGb),
      physicalNetworks: h.physnets,
      runningInstances: running,
      hypervisorType: deps.driver.hypervisorType,
      hostIp: h.hostIp,
      placementRegistered: reg?.placementRegistered ?? false,
      physicalNetworksReported: reg?.physnetsReported ?? false,
      failNextSpawns: f.failNextSpawns,
      spawnDelayMs: f.spawnDelayMs,
    };
  };
  return bindService(ComputeAgentService, {
    async listHosts() {
      const counts = await deps.driver.countByHost();
      return { hosts: deps.hosts.map((h) => hostOut(h, counts.get(h.name) ?? 0)) };
    },
    async listInstances(req) {
      if (req.host) known(req.host);
      const instances = await deps.driver.list({ host: req.host, serverId: req.serverId });
      return {
        instances: instances.map((i) => ({
          serverId: i.serverId,
          host: i.host,
          powerState: i.powerState,
          portIds: i.portIds,
          attempt: i.attempt,
          name: i.name,
          imageRef: i.imageRef,
          vcpus: BigInt(i.vcpus),
          memoryMb: BigInt(i.memoryMb),
          diskGb: BigInt(i.diskGb),
        })),
      };
    },
    async injectFaults(req) {
      if (req.host) known(req.host);
      const targets = req.host ? [byName.get(req.host) as SimulatedHost] : deps.hosts;
      for (const h of targets) {
        deps.faults.set(h.name, { failNextSpawns: req.failNextSpawns, spawnDelayMs: req.spawnDelayMs });
      }
      const counts = await deps.driver.countByHost();
      return { hosts: targets.map((h) => hostOut(h, counts.get(h.name) ?? 0)) };
    },
  });
}
