// Resolves a create request's `networks` into what the conductor builds (design.md §2 step 1,
// reference §2.1/2.2): unspecified → the project's only network; "auto" → the only usable network
// or a dry run of the auto-allocated topology; "none"; or a checked list of networks and ports.
// Read-only: nothing is allocated here.
import type { MessageInitShape, MessageShape } from "@bufbuild/protobuf";
import { NetworkMode, type NetworkRequestSchema } from "@stratus/contracts/compute/v1";
import type { NetworkSchema, PortSchema } from "@stratus/contracts/network/v1";
import { IpAllocation } from "@stratus/contracts/network/v1";
import { isStratusError, StratusError } from "@stratus/runtime";
import type { ApiDeps } from "../deps.js";
import type { Caller } from "../http/router.js";
import type { NetworkEntry } from "../schemas/servers.js";
import { invalid, isUuidLike } from "./common.js";

type Network = MessageShape<typeof NetworkSchema>;
type Port = MessageShape<typeof PortSchema>;

export interface ResolvedNetworks {
  mode: NetworkMode;
  networks: MessageInitShape<typeof NetworkRequestSchema>[];
  /** Ports the conductor will create per server (for the port quota). */
  newPortsPerServer: number;
}

const AMBIGUOUS = "Multiple possible networks found, use a Network ID to be more specific.";

/** Entry rules that need no lookups (all 400), in Nova's order. */
export function checkEntries(entries: NetworkEntry[], maxCount: number): void {
  const ports = new Set<string>();
  for (const e of entries) {
    if (e.port) {
      if (e.fixed_ip) {
        throw invalid(
          `Specified Fixed IP '${e.fixed_ip}' cannot be used with port '${e.port}': the two cannot be specified together.`,
        );
      }
      if (ports.has(e.port)) {
        throw invalid(`Port ID '${e.port}' was specified twice: you cannot attach a port multiple times.`);
      }
      ports.add(e.port);
      continue;
    }
    if (e.uuid === undefined) throw invalid("Bad network format: missing 'uuid'");
    if (!isUuidLike(e.uuid)) {
      throw invalid(`Bad networks format: network uuid is not in proper format (${e.uuid})`);
    }
  }
  if (maxCount > 1 && ports.size) {
    throw invalid(
      "Failed to launch instances: Unable to launch multiple instances with a single configured port ID. Please launch your instance one by one with different ports.",
    );
  }
  if (maxCount > 1 && entries.some((e) => e.fixed_ip)) {
    throw invalid(
      "Failed to launch instances: max_count cannot be greater than 1 if an fixed_ip is specified.",
    );
  }
}

async function available(deps: ApiDeps, caller: Caller): Promise<Network[]> {
  return (await deps.network.listAvailableNetworks({ projectId: caller.projectId })).networks;
}

async function getNetwork(deps: ApiDeps, caller: Caller, id: string): Promise<Network> {
  let net: Network | undefined;
  try {
    net = (await deps.network.getNetwork({ id })).network;
  } catch (err) {
    if (!isStratusError(err, "not_found") && !isStratusError(err, "invalid_input")) throw err;
  }
  const visible =
    net && (caller.isAdmin || net.shared || net.projectId === caller.projectId || net.routerExternal);
  if (!net || !visible) throw invalid(`Network ${id} could not be found.`);
  return net;
}

async function getPort(deps: ApiDeps, caller: Caller, id: string): Promise<Port> {
  let port: Port | undefined;
  try {
    port = (await deps.network.getPort({ id })).port;
  } catch (err) {
    if (!isStratusError(err, "not_found") && !isStratusError(err, "invalid_input")) throw err;
  }
  if (!port || (!caller.isAdmin && port.projectId !== caller.projectId)) {
    throw invalid(`Port id ${id} could not be found.`);
  }
  return port;
}

function checkUsable(net: Network, caller: Caller): void {
  if (net.routerExternal && !net.shared && !caller.isAdmin) {
    throw new StratusError(
      "forbidden",
      `It is not allowed to create an interface on external network ${net.id}`,
    );
  }
  if (!net.subnetIds.length) {
    throw invalid(`Network ${net.id} requires a subnet in order to boot instances on.`);
  }
}

function single(net: Network): ResolvedNetworks {
  return { mode: NetworkMode.LIST, networks: [{ networkId: net.id }], newPortsPerServer: 1 };
}

export async function resolveNetworks(
  deps: ApiDeps,
  caller: Caller,
  requested: "auto" | "none" | NetworkEntry[] | undefined,
): Promise<ResolvedNetworks> {
  if (requested === "none") return { mode: NetworkMode.NONE, networks: [], newPortsPerServer: 0 };

  if (requested === undefined || (Array.isArray(requested) && requested.length === 0)) {
    // Unspecified: the project's only network; none → no networking (not an error).
    const nets = await available(deps, caller);
    if (nets.length > 1) throw new StratusError("conflict", AMBIGUOUS);
    if (nets.length === 0) return { mode: NetworkMode.NONE, networks: [], newPortsPerServer: 0 };
    checkUsable(nets[0]!, caller);
    return single(nets[0]!);
  }

  if (requested === "auto") {
    const nets = (await available(deps, caller)).filter((n) => n.adminStateUp);
    if (nets.length > 1) throw new StratusError("conflict", AMBIGUOUS);
    if (nets.length === 1) {
      checkUsable(nets[0]!, caller);
      return single(nets[0]!);
    }
    const dry = await deps.network.getAutoAllocatedTopology({ projectId: caller.projectId, dryRun: true });
    if (!dry.canAllocate) {
      const why = dry.reasons.length ? `: ${dry.reasons.join("; ")}` : "";
      throw new StratusError(
        "conflict",
        `Unable to automatically allocate a network for project ${caller.projectId}${why}`,
      );
    }
    return { mode: NetworkMode.AUTO, networks: [], newPortsPerServer: 1 };
  }

  const out: ResolvedNetworks = { mode: NetworkMode.LIST, networks: [], newPortsPerServer: 0 };
  const checked = new Map<string, Network>();
  for (const e of requested) {
    if (e.port) {
      const port = await getPort(deps, caller, e.port);
      if (port.deviceId) throw new StratusError("port_in_use", `Port ${port.id} is still in use.`);
      if (
        !port.fixedIps.length &&
        port.ipAllocation !== IpAllocation.DEFERRED &&
        port.ipAllocation !== IpAllocation.NONE
      ) {
        throw invalid(`Port ${port.id} requires a FixedIP in order to be used.`);
      }
      out.networks.push({ networkId: port.networkId, portId: port.id, tag: e.tag ?? "" });
      continue;
    }
    const id = e.uuid!;
    let net = checked.get(id);
    if (!net) {
      net = await getNetwork(deps, caller, id);
      checkUsable(net, caller);
      checked.set(id, net);
    }
    if (e.fixed_ip) {
      const { ports } = await deps.network.listPorts({ networkId: net.id });
      const holder = ports.find((p) => p.fixedIps.some((f) => f.ipAddress === e.fixed_ip));
      if (holder) {
        throw invalid(
          `Fixed IP address ${e.fixed_ip} is already in use on instance ${holder.deviceId || holder.id}.`,
        );
      }
    }
    out.networks.push({ networkId: net.id, fixedIp: e.fixed_ip ?? "", tag: e.tag ?? "" });
    out.newPortsPerServer++;
  }
  return out;
}

/**
 * The port quota must cover min_count servers; max_count is lowered silently when only it does
 * not fit (Nova's validate_networks).
 */
export async function checkPortQuota(
  deps: ApiDeps,
  caller: Caller,
  perServer: number,
  minCount: number,
  maxCount: number,
): Promise<number> {
  if (perServer === 0) return maxCount;
  const q = await deps.network.getQuotas({ projectId: caller.projectId });
  if (q.ports < 0) return maxCount;
  const free = Math.max(0, q.ports - q.portsUsed);
  const fits = Math.floor(free / perServer);
  if (fits < minCount) {
    throw new StratusError(
      "quota_exceeded",
      `The number of defined ports: ${perServer * minCount} is over the limit: ${free}`,
    );
  }
  return Math.min(maxCount, fits);
}
