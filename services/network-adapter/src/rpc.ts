// NetworkService over Connect: each request checked for what no field may hold (input-limits.ts)
// and handed to the core as the caller of its context. A call runs in one transaction (Work), or
// on the paths PortService chooses for ports; its events are published and its placement work
// queued only after the commit.
import type { MessageInitShape } from "@bufbuild/protobuf";
import { NetworkService, type PortSchema } from "@stratus/contracts/network/v1";
import type { Database, EventBus, Logger, ServiceBinding } from "@stratus/runtime";
import { bindService } from "@stratus/runtime";
import { unbindPort } from "./core/binding.js";
import { currentCaller, type Outbox, type Tx } from "./core/context.js";
import type { FreeListKeeper } from "./core/free-list-keeper.js";
import { listHostSegments, reportHostPhysicalNetworks } from "./core/hosts.js";
import type { PortRec } from "./core/model.js";
import { getNetwork } from "./core/network-access.js";
import * as nets from "./core/networks.js";
import { portHoldings, providerSegmentIds } from "./core/port-holdings.js";
import { PortService } from "./core/port-service.js";
import { updatePort } from "./core/port-update.js";
import * as ports from "./core/ports.js";
import * as quotas from "./core/quotas.js";
import * as routers from "./core/routers.js";
import * as segments from "./core/segments.js";
import * as pools from "./core/subnet-pools.js";
import * as subnets from "./core/subnets.js";
import * as topo from "./core/topology.js";
import { Work } from "./core/work.js";
import { EventBatcher } from "./events.js";
import { checkRequestStrings } from "./input-limits.js";
import type { PlacementSync } from "./placement-sync.js";

/** The binding segment is internal state, not part of the Port message. */
const strip = (p: PortRec): MessageInitShape<typeof PortSchema> => {
  const { bindingSegmentId: _, ...rest } = p;
  return rest as MessageInitShape<typeof PortSchema>;
};

/** Every handler of `impl`, called only with a request that passed checkRequestStrings. */
function checked<T extends object>(impl: T): T {
  return Object.fromEntries(
    Object.entries(impl).map(([name, handler]) => [
      name,
      (req: unknown, ctx: unknown) => {
        checkRequestStrings(req);
        return (handler as (req: unknown, ctx: unknown) => unknown)(req, ctx);
      },
    ]),
  ) as T;
}

export function networkService(
  db: Database,
  bus: EventBus,
  sync: PlacementSync,
  freeLists: FreeListKeeper,
  logger: Logger,
): ServiceBinding {
  const events = new EventBatcher(bus, logger);
  /**
   * After a commit: publish the events (batched, not awaited), count the allocations for the free
   * lists' windows, queue the placement work and wait for it (5 s at most).
   */
  const work = new Work(db, async (out: Outbox) => {
    events.add(out.events);
    freeLists.note(out.allocatedFrom);
    await sync.kick({ segments: out.segments, removed: out.removedSegments, hosts: out.hosts }, 5000);
  });
  const portService = new PortService(work);
  const run = <T>(fn: (tx: Tx) => Promise<T>): Promise<T> => work.transaction(currentCaller(), fn);

  return bindService(
    NetworkService,
    checked({
      createNetwork: async (req) => ({ network: await run((tx) => nets.createNetwork(tx, req)) }),
      getNetwork: async (req) => ({ network: await run((tx) => getNetwork(tx, req.id)) }),
      listNetworks: async (req) => {
        const { items, hasMore } = await run((tx) => nets.listNetworks(tx, req));
        return { networks: items, hasMore };
      },
      updateNetwork: async (req) => ({ network: await run((tx) => nets.updateNetwork(tx, req)) }),
      deleteNetwork: async (req) => {
        await run((tx) => nets.deleteNetwork(tx, req.id));
        return {};
      },

      createSegment: async (req) => ({
        segment: await run((tx) => segments.createSegment(tx, req.segment ?? ({} as never))),
      }),
      getSegment: async (req) => ({ segment: await run((tx) => segments.getSegment(tx, req.id)) }),
      listSegments: async (req) => {
        const { items, hasMore } = await run((tx) => segments.listSegments(tx, req));
        return { segments: items, hasMore };
      },
      updateSegment: async (req) => ({ segment: await run((tx) => segments.updateSegment(tx, req)) }),
      deleteSegment: async (req) => {
        await run((tx) => segments.deleteSegment(tx, req.id));
        return {};
      },

      createSubnet: async (req) => ({ subnet: await run((tx) => subnets.createSubnet(tx, req)) }),
      getSubnet: async (req) => ({ subnet: await run((tx) => subnets.getSubnet(tx, req.id)) }),
      listSubnets: async (req) => {
        const { items, hasMore } = await run((tx) => subnets.listSubnets(tx, req));
        return { subnets: items, hasMore };
      },
      updateSubnet: async (req) => ({ subnet: await run((tx) => subnets.updateSubnet(tx, req)) }),
      deleteSubnet: async (req) => {
        await run((tx) => subnets.deleteSubnet(tx, req.id));
        return {};
      },

      createSubnetPool: async (req) => ({
        pool: await run((tx) => pools.createSubnetPool(tx, req.pool ?? ({ prefixes: [] } as never))),
      }),
      getSubnetPool: async (req) => ({ pool: await run((tx) => pools.getSubnetPool(tx, req.id)) }),
      listSubnetPools: async (req) => {
        const { items, hasMore } = await run((tx) => pools.listSubnetPools(tx, req));
        return { pools: items, hasMore };
      },
      updateSubnetPool: async (req) => ({ pool: await run((tx) => pools.updateSubnetPool(tx, req)) }),
      deleteSubnetPool: async (req) => {
        await run((tx) => pools.deleteSubnetPool(tx, req.id));
        return {};
      },

      createRouter: async (req) => ({ router: await run((tx) => routers.createRouter(tx, req)) }),
      getRouter: async (req) => ({ router: await run((tx) => routers.getRouter(tx, req.id)) }),
      listRouters: async (req) => {
        const { items, hasMore } = await run((tx) => routers.listRouters(tx, req));
        return { routers: items, hasMore };
      },
      updateRouter: async (req) => ({ router: await run((tx) => routers.updateRouter(tx, req)) }),
      addRouterInterface: async (req) => {
        const { router, info } = await run((tx) => routers.addRouterInterface(tx, req));
        return { router, interface: info };
      },
      removeRouterInterface: async (req) => {
        const { router, info } = await run((tx) => routers.removeRouterInterface(tx, req));
        return { router, interface: info };
      },
      deleteRouter: async (req) => {
        await run((tx) => routers.deleteRouter(tx, req.id));
        return {};
      },

      createPort: async (req) => ({ port: strip(await portService.create(req, currentCaller())) }),
      getPort: async (req) => ({ port: strip(await run((tx) => ports.getPort(tx, req.id))) }),
      listPorts: async (req) => {
        const { items, hasMore } = await run((tx) => ports.listPorts(tx, req));
        return { ports: items.map(strip), hasMore };
      },
      updatePort: async (req) => ({ port: strip(await run((tx) => updatePort(tx, req))) }),
      deletePort: async (req) => {
        await run((tx) => ports.deletePort(tx, req.id, { refuseIfAttached: req.refuseIfAttached }));
        return {};
      },
      claimPort: async (req) => ({ port: strip(await run((tx) => ports.claimPort(tx, req))) }),
      bindPort: async (req) => {
        const { port, segmentId } = await portService.bind(req, currentCaller());
        return { port: strip(port), segmentId };
      },
      unbindPort: async (req) => ({ port: strip(await run((tx) => unbindPort(tx, req))) }),
      checkAndUpdatePorts: async (req) => ({ ports: await portService.check(req, currentCaller()) }),

      reportHostPhysicalNetworks: async (req) => ({
        segmentIds: await run((tx) => reportHostPhysicalNetworks(tx, req)),
      }),
      listHostSegments: async (req) => ({ mappings: await run((tx) => listHostSegments(tx, req)) }),

      listAvailableNetworks: async (req) => ({
        networks: await run((tx) => topo.listAvailableNetworks(tx, req.projectId)),
      }),
      getAutoAllocatedTopology: async (req) =>
        topo.autoAllocatedTopology(work, currentCaller(), req.projectId, req.dryRun),
      deleteAutoAllocatedTopology: async (req) => {
        await topo.removeAutoAllocatedTopology(work, currentCaller(), req.projectId);
        return {};
      },

      getQuotas: async (req) => run((tx) => quotas.quotas(tx, req.projectId)),
      getQuota: async (req) => ({ quota: await run((tx) => quotas.getQuota(tx, req.projectId)) }),
      getDefaultQuota: async () => ({ quota: await run((tx) => quotas.defaultQuota(tx)) }),
      listQuotas: async () => ({ quotas: await run((tx) => quotas.listQuotas(tx)) }),
      updateQuota: async (req) => ({ quota: await run((tx) => quotas.updateQuota(tx, req)) }),
      deleteQuota: async (req) => {
        await run((tx) => quotas.deleteQuota(tx, req.projectId));
        return {};
      },
      getQuotaDetails: async (req) => run((tx) => quotas.quotaDetails(tx, req.projectId)),
      listPortHoldings: async () => {
        // Segments first: a segment made between the two reads has no port yet.
        const segments = await providerSegmentIds(db);
        return { ports: await portHoldings(db), providerSegmentIds: segments };
      },
    }),
  );
}
