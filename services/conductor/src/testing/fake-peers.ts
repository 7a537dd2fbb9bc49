// In-process peers for the build flow's unit tests: a network-adapter, a scheduler and compute
// agents reduced to what the build asks of them (peers.ts), recording every call and who made it.
import { randomUUID } from "node:crypto";
import { currentContext, StratusError } from "@stratus/runtime";
import type {
  BuildCommand,
  Commands,
  Destinations,
  NetworkInfo,
  NewPort,
  Ports,
  PortView,
  ScheduleRequest,
  ServerState,
} from "../builds/peers.js";
import type { SelectionJson } from "../builds/selection-json.js";

interface FakePort extends PortView {
  deviceId: string;
  host: string;
}

/**
 * Who each call of a peer was made as (the principal of its request context: what the real
 * client asserts to the peer): `user:<id>@<project>`, or `service` for the conductor itself.
 */
export const callsAs: string[] = [];
/** The `notAfter` each call of a peer was made with (what the real client sends as a header). */
export const callsNotAfter: (number | undefined)[] = [];
function recordCaller(): void {
  const ctx = currentContext();
  const p = ctx?.principal;
  callsAs.push(p?.kind === "user" ? `user:${p.userId}@${p.projectId}` : (p?.kind ?? "none"));
  callsNotAfter.push(ctx?.notAfter);
}

export class FakePorts implements Ports {
  readonly ports = new Map<string, FakePort>();
  readonly created: string[] = [];
  readonly deleted: string[] = [];
  readonly unbound: string[] = [];
  private nextAddress = 10;

  /** A user's port, on `networkId`, with no device yet. */
  userPort(networkId: string): string {
    const id = randomUUID();
    this.ports.set(id, {
      id,
      name: "mine",
      networkId,
      macAddress: "fa:16:3e:00:00:99",
      fixedIps: [],
      deviceId: "",
      host: "",
    });
    return id;
  }

  async network(networkId: string): Promise<NetworkInfo> {
    recordCaller();
    return { routed: false, segmentIds: [], name: `name-of-${networkId}` };
  }

  async segmentOfSubnet(): Promise<string | undefined> {
    return undefined;
  }

  async autoAllocatedNetwork(projectId: string): Promise<string> {
    return `auto-${projectId}`;
  }

  async claim(portId: string, deviceId: string): Promise<PortView | undefined> {
    recordCaller();
    const p = this.get(portId);
    p.deviceId = deviceId;
    return p;
  }

  async create(n: NewPort): Promise<PortView | undefined> {
    recordCaller();
    const id = randomUUID();
    const port = { id, name: n.name, networkId: n.networkId, macAddress: "fa:16:3e:00:00:01", fixedIps: [] };
    this.ports.set(id, { ...port, deviceId: n.deviceId, host: "" });
    this.created.push(id);
    return this.ports.get(id);
  }

  async ofDevice(deviceId: string): Promise<PortView[]> {
    return [...this.ports.values()].filter((p) => p.deviceId === deviceId);
  }

  async bind(portId: string, host: string): Promise<PortView | undefined> {
    recordCaller();
    const p = this.get(portId);
    p.host = host;
    if (!p.fixedIps.length) p.fixedIps = [{ ipAddress: `10.0.0.${this.nextAddress++}`, subnetId: "subnet" }];
    return p;
  }

  async delete(portId: string): Promise<void> {
    recordCaller();
    this.get(portId);
    this.ports.delete(portId);
    this.deleted.push(portId);
  }

  async unbind(portId: string): Promise<void> {
    recordCaller();
    const p = this.get(portId);
    Object.assign(p, { deviceId: "", host: "", fixedIps: [] });
    this.unbound.push(portId);
  }

  private get(portId: string): FakePort {
    const p = this.ports.get(portId);
    if (!p) throw new StratusError("not_found", `Port ${portId} could not be found.`);
    return p;
  }
}

export const selection = (host: string): SelectionJson => ({
  host,
  computeNodeUuid: `node-${host}`,
  allocations: [{ providerUuid: `node-${host}`, resources: { VCPU: 1 } }],
});

/** A scheduler over `hosts`: picks the first not ignored, the next ones as alternates. */
export class FakeDestinations implements Destinations {
  readonly claims = new Map<string, SelectionJson>();
  readonly asked: ScheduleRequest[] = [];
  /** Hosts an alternate's claim no longer fits on. */
  readonly full = new Set<string>();

  constructor(private readonly hosts: string[]) {}

  async select(r: ScheduleRequest): Promise<{ selected?: SelectionJson; alternates: SelectionJson[] }> {
    recordCaller();
    this.asked.push(r);
    const [first, ...rest] = this.hosts.filter((h) => !r.ignoreHosts.includes(h)).map(selection);
    if (!first) throw new StratusError("no_valid_host", "No valid host was found.");
    this.claims.set(r.serverId, first);
    return { selected: first, alternates: rest.slice(0, r.maxAlternates) };
  }

  async claimedNode(serverId: string): Promise<SelectionJson | undefined> {
    return this.claims.get(serverId);
  }

  async claim(serverId: string, _projectId: string, _userId: string, s: SelectionJson): Promise<void> {
    recordCaller();
    if (this.full.has(s.host)) throw new StratusError("conflict", `no room on ${s.host}`);
    this.claims.set(serverId, s);
  }

  async release(serverId: string): Promise<void> {
    recordCaller();
    this.claims.delete(serverId);
  }
}

export class FakeCommands implements Commands {
  readonly builds: BuildCommand[] = [];
  readonly deletes: { serverId: string; host: string }[] = [];
  readonly states: ServerState[] = [];
  /** Runs once a build command is sent, before the send resolves (a throw: the run dies there). */
  afterBuild: ((c: BuildCommand) => Promise<void>) | undefined;

  async build(c: BuildCommand): Promise<void> {
    this.builds.push(c);
    await this.afterBuild?.(c);
  }

  async delete(serverId: string, host: string): Promise<void> {
    this.deletes.push({ serverId, host });
  }

  announce(s: ServerState): void {
    this.states.push(s);
  }
}
