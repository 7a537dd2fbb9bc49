// The build's peers (peers.ts) over the RPC clients and the EventBus: the only file of the build
// flow that knows the contracts' messages, subjects and clients.
import { timestampNow } from "@bufbuild/protobuf/wkt";
import type { Client } from "@connectrpc/connect";
import {
  BuildCommandSchema,
  DeleteCommandSchema,
  ServerStateChangedSchema,
} from "@stratus/contracts/events/v1";
import type { NetworkService } from "@stratus/contracts/network/v1";
import type { PlacementService } from "@stratus/contracts/scheduler/v1/placement";
import type { SchedulerService } from "@stratus/contracts/scheduler/v1/scheduler";
import { type EventBus, type Logger, Subjects } from "@stratus/runtime";
import { statusOf } from "../compute/servers.js";
import { BoundedCache } from "./bounded-cache.js";
import { CommandRoutes } from "./command-routes.js";
import type {
  BuildCommand,
  Commands,
  Destinations,
  NetworkInfo,
  NewPort,
  Peers,
  Ports,
  PortView,
  ScheduleRequest,
  ServerState,
} from "./peers.js";
import { ScheduleBatcher } from "./schedule-batcher.js";
import { type SelectionJson, selectionFromJson, selectionToJson } from "./selection-json.js";

/** The device owner of every port the conductor makes or claims for a server (as Nova's). */
const DEVICE_OWNER = "compute:nova";

/**
 * A network's kind, segments and name are read again after this long: a build that meets a
 * network changed since (segments added) sees it within this time.
 */
export const NETWORK_INFO_MAX_AGE_MS = 5000;
/** Networks whose answer is kept at once; past it the one read longest ago goes. */
export const NETWORK_INFO_MAX_ENTRIES = 1000;

export class NetworkAdapterPorts implements Ports {
  constructor(
    /** The client, made on first use (a conductor whose builds are all networks: none needs none). */
    private readonly client: () => Client<typeof NetworkService>,
    private readonly networks = new BoundedCache<string, NetworkInfo>({
      maxEntries: NETWORK_INFO_MAX_ENTRIES,
      maxAgeMs: NETWORK_INFO_MAX_AGE_MS,
    }),
  ) {}

  async network(networkId: string): Promise<NetworkInfo> {
    const cached = this.networks.get(networkId);
    if (cached) return cached;
    const net = (await this.client().getNetwork({ id: networkId })).network;
    const info = {
      routed: net?.routed ?? false,
      segmentIds: (net?.segments ?? []).map((s) => s.id),
      name: net?.name ?? "",
    };
    this.networks.set(networkId, info);
    return info;
  }

  async segmentOfSubnet(subnetId: string): Promise<string | undefined> {
    const subnet = (await this.client().getSubnet({ id: subnetId })).subnet;
    return subnet?.segmentId || undefined;
  }

  async autoAllocatedNetwork(projectId: string): Promise<string> {
    return (await this.client().getAutoAllocatedTopology({ projectId, dryRun: false })).networkId;
  }

  async claim(portId: string, deviceId: string, projectId: string): Promise<PortView | undefined> {
    return (await this.client().claimPort({ portId, deviceId, deviceOwner: DEVICE_OWNER, projectId })).port;
  }

  async create(p: NewPort): Promise<PortView | undefined> {
    return (
      await this.client().createPort({
        networkId: p.networkId,
        projectId: p.projectId,
        name: p.name,
        deviceId: p.deviceId,
        deviceOwner: DEVICE_OWNER,
        fixedIps: p.fixedIp ? [{ ipAddress: p.fixedIp, subnetId: "" }] : [],
      })
    ).port;
  }

  async ofDevice(deviceId: string): Promise<PortView[]> {
    return (await this.client().listPorts({ deviceId })).ports;
  }

  async bind(portId: string, host: string): Promise<PortView | undefined> {
    return (await this.client().bindPort({ portId, host })).port;
  }

  async delete(portId: string): Promise<void> {
    await this.client().deletePort({ id: portId });
  }

  async unbind(portId: string): Promise<void> {
    await this.client().unbindPort({ portId, clearDevice: true });
  }
}

export class SchedulerDestinations implements Destinations {
  constructor(
    private readonly scheduler: Client<typeof SchedulerService>,
    /** The scheduler's placement: the claims a consumer holds. */
    private readonly placement: Client<typeof PlacementService>,
    private readonly batcher: ScheduleBatcher,
    /** Hosts no build may go to now (down or disabled compute services). */
    private readonly unschedulable: () => Promise<string[]> = async () => [],
  ) {}

  async select(r: ScheduleRequest): Promise<{ selected?: SelectionJson; alternates: SelectionJson[] }> {
    // Sorted and without repeats: the batcher shares a call among builds with the same question.
    const ignoreHosts = [...new Set([...r.ignoreHosts, ...(await this.unschedulable())])].sort();
    const destination = await this.batcher.select({
      instanceUuids: [r.serverId],
      projectId: r.projectId,
      userId: r.userId,
      resources: r.resources,
      extraGroups: r.extraGroups,
      requiredAggregates: r.requiredAggregates,
      ignoreHosts,
      maxAlternates: r.maxAlternates,
    });
    return {
      ...(destination.selected ? { selected: selectionToJson(destination.selected) } : {}),
      alternates: destination.alternates.map(selectionToJson),
    };
  }

  async claimedNode(serverId: string): Promise<SelectionJson | undefined> {
    const { allocations } = await this.placement.getAllocations({ consumerUuid: serverId });
    const node = allocations.find(
      (a) => a.resources.VCPU !== undefined || a.resources.MEMORY_MB !== undefined,
    );
    if (!node) return undefined;
    const { provider } = await this.placement.getResourceProvider({ uuid: node.providerUuid });
    if (!provider) return undefined;
    return selectionToJson({ host: provider.name, computeNodeUuid: node.providerUuid, allocations });
  }

  async claim(serverId: string, projectId: string, userId: string, selection: SelectionJson): Promise<void> {
    await this.scheduler.claimSelection({
      consumerUuid: serverId,
      projectId,
      userId,
      selection: selectionFromJson(selection),
    });
  }

  async release(serverId: string): Promise<void> {
    await this.scheduler.releaseClaims({ consumerUuid: serverId });
  }
}

const SHARDED = { build: Subjects.computeBuild, delete: Subjects.computeDelete };
const UNSHARDED = { build: Subjects.computeBuildUnsharded, delete: Subjects.computeDeleteUnsharded };

export class BusCommands implements Commands {
  private readonly routes: CommandRoutes;

  constructor(private readonly bus: EventBus) {
    this.routes = new CommandRoutes(bus);
  }

  /** How a host's commands are addressed: on its shard's stream, or the unsharded one (CommandRoutes). */
  private async subjectsOf(host: string): Promise<typeof SHARDED> {
    return (await this.routes.sharded(host)) ? SHARDED : UNSHARDED;
  }

  async build(c: BuildCommand): Promise<void> {
    const subject = (await this.subjectsOf(c.host)).build(c.host);
    await this.bus.publishDurable(subject, BuildCommandSchema, {
      serverId: c.serverId,
      host: c.host,
      attempt: c.attempt,
      portIds: c.portIds,
      vcpus: BigInt(c.vcpus),
      memoryMb: BigInt(c.memoryMb),
      diskGb: BigInt(c.diskGb),
      imageRef: c.imageRef,
      metadata: c.metadata,
      name: c.name,
    });
  }

  async delete(serverId: string, host: string): Promise<void> {
    const subject = (await this.subjectsOf(host)).delete(host);
    await this.bus.publishDurable(subject, DeleteCommandSchema, { serverId, host });
  }

  announce(s: ServerState): void {
    this.bus.publish(Subjects.serverState(s.projectId), ServerStateChangedSchema, {
      serverId: s.serverId,
      projectId: s.projectId,
      vmState: s.vmState,
      taskState: s.taskState,
      status: statusOf({ vmState: s.vmState, deleted: s.deleted }),
      host: s.host,
      at: timestampNow(),
      message: s.message,
    });
  }
}

/** The peers of a conductor's builds over its clients and bus. */
export function peersOver(o: {
  network: () => Client<typeof NetworkService>;
  scheduler: Client<typeof SchedulerService>;
  placement: Client<typeof PlacementService>;
  bus: EventBus;
  logger: Logger;
  /** Builds with the same request spec scheduled in one SelectDestinations call, at most. */
  scheduleBatch: number;
  /** SelectDestinations calls in flight per request spec before builds wait to batch. */
  scheduleCalls: number;
  /** Hosts no build may go to now (ServiceRegistry.unschedulableHosts). */
  unschedulableHosts?: () => Promise<string[]>;
}): Peers {
  const batcher = new ScheduleBatcher(o.scheduler, o.logger, {
    maxBatch: o.scheduleBatch,
    maxCalls: o.scheduleCalls,
  });
  return {
    ports: new NetworkAdapterPorts(o.network),
    destinations: new SchedulerDestinations(o.scheduler, o.placement, batcher, o.unschedulableHosts),
    commands: new BusCommands(o.bus),
  };
}
