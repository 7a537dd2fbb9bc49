// At start every simulated host registers its compute-node resource provider and inventory in
// placement (idempotent: EnsureResourceProvider, then SetInventories only when the inventory
// differs), and after that reports its physical networks to the network-adapter, which maps it
// to segments. Both retry with back-off until their peer answers, in the background, with a
// bounded number of hosts in flight so that 1,000 hosts do not flood the scheduler.
import type { NetworkService } from "@stratus/contracts/network/v1";
import type { Inventory, PlacementService } from "@stratus/contracts/scheduler/v1/placement";
import { type Logger, StratusError, type serviceClient } from "@stratus/runtime";
import { forEachLimited, sleep } from "../concurrency.js";
import { computeNodeUuid } from "./compute-node.js";

type PlacementClient = ReturnType<typeof serviceClient<typeof PlacementService>>;
type NetworkClient = ReturnType<typeof serviceClient<typeof NetworkService>>;

export interface HostResources {
  vcpus: number;
  memoryMb: number;
  diskGb: number;
}

export interface SimulatedHost extends HostResources {
  name: string;
  computeNodeUuid: string;
  physnets: string[];
  hostIp: string;
}

export interface HostRegistrationState {
  placementRegistered: boolean;
  physnetsReported: boolean;
}

/** Nova's defaults: cpu_allocation_ratio 4.0 (as asked here), reserved_host_memory_mb 512. */
export function inventoriesFor(r: HostResources) {
  return [
    { resourceClass: "VCPU", total: r.vcpus, reserved: 0, allocationRatio: 4.0 },
    { resourceClass: "MEMORY_MB", total: r.memoryMb, reserved: 512, allocationRatio: 1.0 },
    { resourceClass: "DISK_GB", total: r.diskGb, reserved: 0, allocationRatio: 1.0 },
  ].map((i) => ({
    resourceClass: i.resourceClass,
    total: BigInt(i.total),
    reserved: BigInt(i.reserved),
    minUnit: 1n,
    maxUnit: BigInt(i.total),
    stepSize: 1n,
    allocationRatio: i.allocationRatio,
  }));
}

function sameInventories(a: Inventory[], b: ReturnType<typeof inventoriesFor>): boolean {
  if (a.length !== b.length) return false;
  return b.every((w) => {
    const have = a.find((x) => x.resourceClass === w.resourceClass);
    return (
      !!have &&
      have.total === w.total &&
      have.reserved === w.reserved &&
      have.minUnit === w.minUnit &&
      have.maxUnit === w.maxUnit &&
      have.stepSize === w.stepSize &&
      Math.abs(have.allocationRatio - w.allocationRatio) < 1e-9
    );
  });
}

export class HostRegistrar {
  readonly state = new Map<string, HostRegistrationState>();
  private stopped = false;
  private readonly loggedOnce = new Set<string>();

  constructor(
    private readonly hosts: SimulatedHost[],
    private readonly placement: PlacementClient,
    private readonly network: NetworkClient,
    private readonly logger: Logger,
    private readonly options: { concurrency: number; maxBackoffMs?: number } = { concurrency: 16 },
  ) {
    for (const h of hosts) this.state.set(h.name, { placementRegistered: false, physnetsReported: false });
  }

  stop(): void {
    this.stopped = true;
  }

  /**
   * Registers every host; resolves when all are in placement (the physnet reports go on in the
   * background until the network-adapter answers; `physnetsDone` resolves when they are all in).
   */
  physnetsDone: Promise<void> = Promise.resolve();

  async start(): Promise<void> {
    const started = performance.now();
    const reports: SimulatedHost[] = [];
    let wake: (() => void) | undefined;
    let placementFinished = false;
    // Hosts go to the physnet reporter as soon as they are in placement.
    const reporter = (async () => {
      const inFlight = new Set<Promise<void>>();
      while (!this.stopped) {
        const host = reports.shift();
        if (!host) {
          if (placementFinished) break;
          await new Promise<void>((r) => {
            wake = r;
          });
          continue;
        }
        const p = this.reportPhysnets(host).finally(() => inFlight.delete(p));
        inFlight.add(p);
        if (inFlight.size >= this.options.concurrency) await Promise.race(inFlight);
      }
      await Promise.all(inFlight);
    })();
    this.physnetsDone = reporter.then(() => {
      if (!this.stopped)
        this.logger.info({ hosts: this.hosts.length }, "physical networks of all hosts reported");
    });
    await forEachLimited(this.hosts, this.options.concurrency, async (host) => {
      await this.registerInPlacement(host);
      reports.push(host);
      wake?.();
    });
    placementFinished = true;
    wake?.();
    if (!this.stopped) {
      this.logger.info(
        { hosts: this.hosts.length, ms: Math.round(performance.now() - started) },
        "all hosts registered in placement",
      );
    }
  }

  private backoff(attempt: number): number {
    const max = this.options.maxBackoffMs ?? 5000;
    return Math.min(max, 100 * 2 ** Math.min(attempt, 10)) * (0.75 + Math.random() * 0.5);
  }

  private logFailure(what: string, host: string, err: unknown, attempt: number) {
    const kind = err instanceof StratusError ? err.kind : "error";
    const key = `${what}:${kind}`;
    // Once per kind of failure, then every 20th attempt of a host, to keep 1,000 hosts quiet.
    if (!this.loggedOnce.has(key)) {
      this.loggedOnce.add(key);
      // A peer still starting (unavailable) is expected at start-up: the reason is enough.
      const detail = kind === "unavailable" ? { reason: String((err as Error)?.message) } : { err };
      this.logger.warn({ ...detail, host, kind }, `${what} failed; retrying with back-off`);
    } else if (attempt % 20 === 0) {
      this.logger.warn(
        { host, kind, attempt, reason: String((err as Error)?.message) },
        `${what} still failing`,
      );
    }
  }

  private async registerInPlacement(host: SimulatedHost): Promise<void> {
    const wanted = inventoriesFor(host);
    for (let attempt = 1; !this.stopped; attempt++) {
      try {
        const ensured = await this.placement.ensureResourceProvider({
          uuid: host.computeNodeUuid,
          name: host.name,
        });
        // A provider just created has no inventory: no need to read it back.
        const current =
          ensured.created && ensured.provider
            ? { providerGeneration: ensured.provider.generation, inventories: [] }
            : await this.placement.getInventories({ providerUuid: host.computeNodeUuid });
        if (!sameInventories(current.inventories, wanted)) {
          await this.placement.setInventories({
            providerUuid: host.computeNodeUuid,
            providerGeneration: current.providerGeneration,
            inventories: wanted,
          });
        }
        const s = this.state.get(host.name);
        if (s) s.placementRegistered = true;
        return;
      } catch (err) {
        // A stale generation (someone else wrote the provider) is retried at once.
        if (err instanceof StratusError && err.kind === "conflict" && /generation/i.test(err.message))
          continue;
        this.logFailure("compute node registration in placement", host.name, err, attempt);
        await sleep(this.backoff(attempt));
      }
    }
  }

  private async reportPhysnets(host: SimulatedHost): Promise<void> {
    for (let attempt = 1; !this.stopped; attempt++) {
      try {
        await this.network.reportHostPhysicalNetworks({
          host: host.name,
          physicalNetworks: host.physnets,
          computeNodeUuid: host.computeNodeUuid,
        });
        const s = this.state.get(host.name);
        if (s) s.physnetsReported = true;
        return;
      } catch (err) {
        this.logFailure("physical network report", host.name, err, attempt);
        // The network-adapter may not implement it yet: back off further then.
        const unimplemented = err instanceof StratusError && err.kind === "unimplemented";
        await sleep(unimplemented ? Math.max(this.backoff(attempt), 2000) : this.backoff(attempt));
      }
    }
  }
}

export function simulatedHosts(
  names: string[],
  resources: HostResources,
  physnets: (host: string) => string[],
): SimulatedHost[] {
  return names.map((name, i) => ({
    name,
    computeNodeUuid: computeNodeUuid(name),
    physnets: physnets(name),
    hostIp: `10.${((i + 1) >> 16) & 255}.${((i + 1) >> 8) & 255}.${(i + 1) & 255}`,
    ...resources,
  }));
}
