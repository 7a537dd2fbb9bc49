// NetworkService over Connect: each call is one database transaction; its events are published
// and its placement work queued only after the commit.
import type { MessageInitShape } from "@bufbuild/protobuf";
import { NetworkService, type PortSchema } from "@stratus/contracts/network/v1";
import { bindService, type Database, type EventBus, type ServiceBinding } from "@stratus/runtime";
import { currentCaller, Outbox, type Tx } from "./core/context.js";
import { listHostSegments, reportHostPhysicalNetworks } from "./core/hosts.js";
import type { PortRec } from "./core/model.js";
import * as nets from "./core/networks.js";
import * as ports from "./core/ports.js";
import * as topo from "./core/topology.js";
import type { PlacementSync } from "./placement-sync.js";

/** The binding segment is internal state, not part of the Port message. */
const strip = (p: PortRec): MessageInitShape<typeof PortSchema> => {
  const { bindingSegmentId: _, ...rest } = p;
  return rest as MessageInitShape<typeof PortSchema>;
};

export function networkService(db: Database, bus: EventBus, sync: PlacementSync): ServiceBinding {
  async function run<T>(fn: (tx: Tx) => Promise<T>, opts: { placementWaitMs?: number } = {}): Promise<T> {
    const caller = currentCaller();
    let out = new Outbox();
    const result = await db.transaction(async (q) => {
      out = new Outbox();
      return fn({ q, out, caller });
    });
    for (const e of out.events) bus.publish(e.subject, e.schema, e.value);
    await sync.kick(
      { segments: out.segments, removed: out.removedSegments, hosts: out.hosts },
      opts.placementWaitMs ?? 5000,
    );
    return result;
  }

  return bindService(NetworkService, {
    createNetwork: async (req) => ({ network: await run((tx) => nets.createNetwork(tx, req)) }),
    getNetwork: async (req) => ({ network: await run((tx) => nets.getNetwork(tx, req.id)) }),
    listNetworks: async (req) => ({ networks: await run((tx) => nets.listNetworks(tx, req)) }),
    updateNetwork: async (req) => ({ network: await run((tx) => nets.updateNetwork(tx, req)) }),
    deleteNetwork: async (req) => {
      await run((tx) => nets.deleteNetwork(tx, req.id));
      return {};
    },

    createSegment: async (req) => ({
      segment: await run((tx) => nets.createSegment(tx, req.segment ?? ({} as never))),
    }),
    getSegment: async (req) => ({ segment: await run((tx) => nets.getSegment(tx, req.id)) }),
    listSegments: async (req) => ({
      segments: await run((tx) => nets.listSegments(tx, req.networkId, req.physicalNetwork)),
    }),
    deleteSegment: async (req) => {
      await run((tx) => nets.deleteSegment(tx, req.id));
      return {};
    },

    createSubnet: async (req) => ({ subnet: await run((tx) => nets.createSubnet(tx, req)) }),
    getSubnet: async (req) => ({ subnet: await run((tx) => nets.getSubnet(tx, req.id)) }),
    listSubnets: async (req) => ({ subnets: await run((tx) => nets.listSubnets(tx, req)) }),
    updateSubnet: async (req) => ({ subnet: await run((tx) => nets.updateSubnet(tx, req)) }),
    deleteSubnet: async (req) => {
      await run((tx) => nets.deleteSubnet(tx, req.id));
      return {};
    },

    createSubnetPool: async (req) => ({
      pool: await run((tx) => nets.createSubnetPool(tx, req.pool ?? ({ prefixes: [] } as never))),
    }),
    getSubnetPool: async (req) => ({ pool: await run((tx) => nets.getSubnetPool(tx, req.id)) }),
    listSubnetPools: async (req) => ({ pools: await run((tx) => nets.listSubnetPools(tx, req.isDefault)) }),
    deleteSubnetPool: async (req) => {
      await run((tx) => nets.deleteSubnetPool(tx, req.id));
      return {};
    },

    createRouter: async (req) => ({ router: await run((tx) => topo.createRouter(tx, req)) }),
    getRouter: async (req) => ({ router: await run((tx) => topo.getRouter(tx, req.id)) }),
    listRouters: async (req) => ({ routers: await run((tx) => topo.listRouters(tx, req.projectId)) }),
    addRouterInterface: async (req) => ({ router: await run((tx) => topo.addRouterInterface(tx, req)) }),
    deleteRouter: async (req) => {
      await run((tx) => topo.deleteRouter(tx, req.id));
      return {};
    },

    createPort: async (req) => ({ port: strip(await run((tx) => ports.createPort(tx, req))) }),
    getPort: async (req) => ({ port: strip(await run((tx) => ports.getPort(tx, req.id))) }),
    listPorts: async (req) => ({ ports: (await run((tx) => ports.listPorts(tx, req))).map(strip) }),
    updatePort: async (req) => ({ port: strip(await run((tx) => ports.updatePort(tx, req))) }),
    deletePort: async (req) => {
      await run((tx) => ports.deletePort(tx, req.id));
      return {};
    },
    claimPort: async (req) => ({ port: strip(await run((tx) => ports.claimPort(tx, req))) }),
    bindPort: async (req) => {
      const { port, segmentId } = await run((tx) => ports.bindPort(tx, req));
      return { port: strip(port), segmentId };
    },
    unbindPort: async (req) => ({ port: strip(await run((tx) => ports.unbindPort(tx, req))) }),
    checkAndUpdatePorts: async (req) => ({ ports: await run((tx) => ports.checkAndUpdatePorts(tx, req)) }),

    reportHostPhysicalNetworks: async (req) => ({
      segmentIds: await run((tx) => reportHostPhysicalNetworks(tx, req)),
    }),
    listHostSegments: async (req) => ({ mappings: await run((tx) => listHostSegments(tx, req)) }),

    listAvailableNetworks: async (req) => ({
      networks: await run((tx) => topo.listAvailableNetworks(tx, req.projectId)),
    }),
    getAutoAllocatedTopology: async (req) => {
      const project = topo.topologyProject({ caller: currentCaller() } as Tx, req.projectId);
      try {
        return await run((tx) => topo.getAutoAllocatedTopology(tx, project, req.dryRun));
      } catch (err) {
        if (!(err instanceof topo.LostTopologyRace)) throw err;
        // Another caller made it first: ours was rolled back; return theirs.
        return run((tx) => topo.getAutoAllocatedTopology(tx, project, false));
      }
    },
    deleteAutoAllocatedTopology: async (req) => {
      const project = topo.topologyProject({ caller: currentCaller() } as Tx, req.projectId);
      await run((tx) => topo.deleteAutoAllocatedTopology(tx, project));
      return {};
    },

    getQuotas: async (req) => run((tx) => topo.quotas(tx, req.projectId)),
  });
}
