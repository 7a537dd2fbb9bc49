// What a build needs from the other services, narrowed to the calls its steps make: ports from
// the network-adapter, destinations and claims from the scheduler, commands and announcements
// over NATS. The steps talk only to these; peer-adapters.ts implements them over the RPC clients
// and the EventBus, and the unit tests over objects of their own.
import type { SelectionJson } from "./selection-json.js";

/** What a build needs to know of a network. */
export interface NetworkInfo {
  routed: boolean;
  segmentIds: string[];
  name: string;
}

/** A port as the build reads it (a NetworkService Port has these fields and more). */
export interface PortView {
  id: string;
  name: string;
  networkId: string;
  macAddress: string;
  fixedIps: { ipAddress: string; subnetId: string }[];
}

export interface NewPort {
  networkId: string;
  projectId: string;
  name: string;
  deviceId: string;
  /** An address asked for, or "" for any (deferred on a routed network). */
  fixedIp: string;
}

/** The network-adapter, as the build uses it. Refusals are StratusErrors (`not_found`, `ip_exhausted` …). */
export interface Ports {
  network(networkId: string): Promise<NetworkInfo>;
  /** The segment a subnet is on, if any. */
  segmentOfSubnet(subnetId: string): Promise<string | undefined>;
  /** The project's auto-allocated network, made on first use ("get me a network"). */
  autoAllocatedNetwork(projectId: string): Promise<string>;
  /** A user's port taken for the server (again for the same device: the same answer). */
  claim(portId: string, deviceId: string, projectId: string): Promise<PortView | undefined>;
  create(port: NewPort): Promise<PortView | undefined>;
  ofDevice(deviceId: string): Promise<PortView[]>;
  /** Binds to a host; a deferred port takes its address from the host's segment now. */
  bind(portId: string, host: string): Promise<PortView | undefined>;
  delete(portId: string): Promise<void>;
  /** Unbinds a user's port and clears its device: it is theirs again. */
  unbind(portId: string): Promise<void>;
}

/** A SelectDestinations question for one server. */
export interface ScheduleRequest {
  serverId: string;
  projectId: string;
  userId: string;
  resources: Record<string, bigint>;
  /** Request groups beside the flavor's (one per routed network: an address from its segments). */
  extraGroups: {
    suffix: string;
    resources: Record<string, bigint>;
    memberOf: { aggregateUuids: string[] }[];
  }[];
  requiredAggregates: { aggregateUuids: string[] }[];
  ignoreHosts: string[];
  maxAlternates: number;
}

/** The scheduler and placement, as the build uses them. */
export interface Destinations {
  /** The host chosen and claimed for the server, and alternates; `no_valid_host` when none fits. */
  select(req: ScheduleRequest): Promise<{ selected?: SelectionJson; alternates: SelectionJson[] }>;
  /** The compute node the server's consumer holds a claim on, with the whole claim; undefined if none. */
  claimedNode(serverId: string): Promise<SelectionJson | undefined>;
  /** Claims an alternate, replacing the consumer's claim atomically; refused when it no longer fits. */
  claim(serverId: string, projectId: string, userId: string, selection: SelectionJson): Promise<void>;
  release(serverId: string): Promise<void>;
}

export interface BuildCommand {
  serverId: string;
  host: string;
  attempt: number;
  portIds: string[];
  vcpus: number;
  memoryMb: number;
  diskGb: number;
  imageRef: string;
  metadata: Record<string, string>;
  name: string;
}

export interface ServerState {
  serverId: string;
  projectId: string;
  host: string;
  vmState: string;
  taskState: string;
  message: string;
  deleted: boolean;
}

/** What the build tells compute agents (durably) and listeners (stratus.server.state). */
export interface Commands {
  /** Resolves once the command is stored (JetStream); the agent answers an attempt once. */
  build(command: BuildCommand): Promise<void>;
  delete(serverId: string, host: string): Promise<void>;
  announce(state: ServerState): void;
}

export interface Peers {
  ports: Ports;
  destinations: Destinations;
  commands: Commands;
}
