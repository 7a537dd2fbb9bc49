// NetworkService over Connect: each call is one database transaction (CreatePort's common case a
// single statement); its events are published and its placement work queued only after the commit.
import type { MessageInitShape } from "@bufbuild/protobuf";
import {
  type CreatePortRequest,
  IpAllocation,
  NetworkService,
  type PortSchema,
} from "@stratus/contracts/network/v1";
import {
  bindService,
  currentContext,
  type Database,
  type EventBus,
  type Logger,
  type RequestContext,
  runWithContext,
  type ServiceBinding,
} from "@stratus/runtime";
import { currentCaller, Outbox, type PendingEvent, type Tx } from "./core/context.js";
import { listHostSegments, reportHostPhysicalNetworks } from "./core/hosts.js";
import type { PortRec } from "./core/model.js";
import * as nets from "./core/networks.js";
import * as ports from "./core/ports.js";
import * as topo from "./core/topology.js";
import type { PlacementSync } from "./placement-sync.js";

const ROUTED_MEMORY_MS = 60_000;

/** The binding segment is internal state, not part of the Port message. */
const strip = (p: PortRec): MessageInitShape<typeof PortSchema> => {
  const { bindingSegmentId: _, ...rest } = p;
  return rest as MessageInitShape<typeof PortSchema>;
};

/**
 * Publishes committed calls' events on the next turn of the event loop, those of every call that
 * finished in this turn together, each under its own request context: NATS then writes them to
 * its socket once per turn instead of once per call (core NATS, fire and forget, as before).
 */
export class EventBatcher {
  private pending: { ctx: RequestContext | undefined; events: PendingEvent[] }[] = [];

  constructor(
    private readonly bus: EventBus,
    private readonly logger: Logger,
  ) {}

  add(events: PendingEvent[]): void {
    if (!events.length) return;
    if (!this.pending.length) setImmediate(() => this.flush());
    this.pending.push({ ctx: currentContext(), events });
  }

  flush(): void {
    const batch = this.pending;
    this.pending = [];
    for (const { ctx, events } of batch) {
      const publish = () => {
        for (const e of events) {
          try {
            this.bus.publish(e.subject, e.schema, e.value);
          } catch (err) {
            this.logger.error({ err, subject: e.subject }, "event not published");
          }
        }
      };
      if (ctx) runWithContext(ctx, publish);
      else publish();
    }
  }
}

export function networkService(
  db: Database,
  bus: EventBus,
  sync: PlacementSync,
  logger: Logger,
): ServiceBinding {
  const events = new EventBatcher(bus, logger);
  const batcher = new ports.PortCreationBatcher(db);
  const portChecks = new ports.PortCheckBatcher(db);
  const deferredPorts = new ports.DeferredPortBatcher(db);
  const deferredBinds = new ports.DeferredBindBatcher(db);

  /** After a commit: publish the events (batched, not awaited) and queue the placement work. */
  async function committed(out: Outbox, placementWaitMs = 5000): Promise<void> {
    events.add(out.events);
    await sync.kick(
      { segments: out.segments, removed: out.removedSegments, hosts: out.hosts },
      placementWaitMs,
    );
  }

  async function run<T>(fn: (tx: Tx) => Promise<T>, opts: { placementWaitMs?: number } = {}): Promise<T> {
    const caller = currentCaller();
    let out = new Outbox();
    const result = await db.transaction(async (q) => {
      out = new Outbox();
      return fn({ q, out, caller });
    });
    await committed(out, opts.placementWaitMs);
    return result;
  }

  /** A call whose work is one statement: autocommitted, no transaction around it. */
  async function once<T>(fn: (tx: Tx) => Promise<T>): Promise<T> {
    const out = new Outbox();
    const result = await fn({ q: db, out, caller: currentCaller() });
    await committed(out);
    return result;
  }

  /** The common case in one autocommitted call (batched); anything else in a transaction. */
  // Networks whose last port made by the full path came out deferred (routed): the one-statement
  // path cannot make their ports, so for ROUTED_MEMORY_MS it is not tried first for them (it was
  // a wasted batch call per routed port). It only decides which path is tried first: a network
  // that stopped being routed is served by the full path meanwhile, as correctly.
  const routedUntil = new Map<string, number>();
  // Deferred ports this process made and has not bound yet: their first bind tries the
  // one-statement path (ports.DeferredBindBatcher, with the other first binds of its turn) before
  // the transaction.
  const unboundDeferred = new Set<string>();
  const noteDeferred = (port: PortRec) => {
    if (port.ipAllocation !== IpAllocation.DEFERRED) return;
    if (unboundDeferred.size >= 100_000) unboundDeferred.clear();
    unboundDeferred.add(port.id);
  };
  async function createPort(req: CreatePortRequest): Promise<PortRec> {
    const caller = currentCaller();
    const knownRouted = (routedUntil.get(req.networkId) ?? 0) > Date.now();
    if (knownRouted && ports.deferredEligible(req, caller)) {
      const out = new Outbox();
      const port = await deferredPorts.create(req, caller, out);
      if (port) {
        noteDeferred(port);
        await committed(out);
        return port;
      }
    }
    const row = ports.fastEligible(req, caller) && !knownRouted ? await batcher.create(req, caller) : null;
    if (!row) {
      const port = await run((tx) => ports.createPort(tx, req));
      noteDeferred(port);
      if (port.ipAllocation === IpAllocation.DEFERRED) {
        if (routedUntil.size > 10_000) routedUntil.clear();
        routedUntil.set(req.networkId, Date.now() + ROUTED_MEMORY_MS);
      }
      return port;
    }
    const out = new Outbox();
    const port = ports.fastPortCreated(row, out);
    await committed(out);
    return port;
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

    createPort: async (req) => ({ port: strip(await createPort(req)) }),
    getPort: async (req) => ({ port: strip(await run((tx) => ports.getPort(tx, req.id))) }),
    listPorts: async (req) => ({ ports: (await run((tx) => ports.listPorts(tx, req))).map(strip) }),
    updatePort: async (req) => ({ port: strip(await run((tx) => ports.updatePort(tx, req))) }),
    deletePort: async (req) => {
      await run((tx) => ports.deletePort(tx, req.id));
      return {};
    },
    claimPort: async (req) => ({ port: strip(await run((tx) => ports.claimPort(tx, req))) }),
    bindPort: async (req) => {
      const id = req.portId.toLowerCase();
      if (unboundDeferred.delete(id)) {
        const fast = await once((tx) => deferredBinds.bind(req, tx.caller, tx.out));
        if (fast) return { port: strip(fast.port), segmentId: fast.segmentId };
      }
      const { port, segmentId } = await run((tx) => ports.bindPort(tx, req));
      return { port: strip(port), segmentId };
    },
    unbindPort: async (req) => ({ port: strip(await run((tx) => ports.unbindPort(tx, req))) }),
    checkAndUpdatePorts: async (req) => ({ ports: await once((tx) => portChecks.check(tx.out, req)) }),

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
