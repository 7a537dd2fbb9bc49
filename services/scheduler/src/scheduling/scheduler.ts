// SelectDestinations: allocation candidates → filters → weighers → atomic claim per instance
// (consumer = instance uuid) with alternates; ClaimSelection / ReleaseClaims for reschedules.
// A claim is placement's allocation write: it locks the providers and re-checks capacity, so when
// another scheduler won the race the claim fails cleanly and the next host is tried.
import { invalidInput, isStratusError, StratusError } from "@stratus/runtime";
import type { AllocationNotifier } from "../placement/allocation-events.js";
import {
  type AllocationCandidates,
  type Candidate,
  type CandidateQuery,
  explainNoCandidates,
  type ProviderSummary,
  type RequestGroupSpec,
} from "../placement/candidates.js";
import { assertUuid } from "../placement/names.js";
import {
  groupAllocations,
  mergeAllocations,
  type Placement,
  type ProviderAllocation,
} from "../placement/placement.js";
import { type HostState, type WeigherKind, weighHosts } from "./weighers.js";

export interface SchedulerOptions {
  /** Alternates per instance when the request does not say (Nova: max_attempts - 1). */
  maxAlternates: number;
  /** Candidates fetched per round after the first (Nova's max_placement_results). */
  candidateLimit: number;
}

export interface RequestSpec {
  instanceUuids: string[];
  projectId: string;
  userId: string;
  resources: Record<string, number>;
  extraGroups: RequestGroupSpec[];
  requiredAggregates: string[][];
  requiredTraits: string[];
  forbiddenTraits: string[];
  ignoreHosts: string[];
  forceHosts: string[];
  weigher: WeigherKind;
  /** 0: the scheduler's default. */
  maxAlternates: number;
}

export interface Selection {
  host: string;
  computeNodeUuid: string;
  allocations: ProviderAllocation[];
}

export interface InstanceDestination {
  instanceUuid: string;
  selected: Selection;
  alternates: Selection[];
}

/** One host with the ways (allocation requests) it can take an instance. */
interface HostOption {
  host: string;
  rootUuid: string;
  candidates: Candidate[];
}

const ROUNDS = 3;
/**
 * Hosts fetched beyond instances + alternates in the first round. The candidate query already
 * orders by free RAM/VCPU (the weighers' main term), so a few spare hosts are enough to weigh,
 * to move on when another scheduler wins a race, and to spread concurrent requests (equal hosts
 * come back in random order). Later rounds fetch `candidateLimit`.
 */
const SPARE_HOSTS = 8;

/** Free/used bookkeeping of the providers seen in this request, updated as we claim. */
class LocalView {
  private readonly usage = new Map<string, Map<string, { capacity: number; used: number }>>();

  absorb(summaries: ProviderSummary[]): void {
    for (const s of summaries) {
      this.usage.set(s.uuid, new Map(Object.entries(s.resources).map(([rc, r]) => [rc, { ...r }])));
    }
  }

  fits(allocations: ProviderAllocation[]): boolean {
    return allocations.every((a) =>
      Object.entries(a.resources).every(([rc, n]) => {
        const r = this.usage.get(a.providerUuid)?.get(rc);
        return r !== undefined && r.used + n <= r.capacity;
      }),
    );
  }

  take(allocations: ProviderAllocation[]): void {
    for (const a of allocations) {
      for (const [rc, n] of Object.entries(a.resources)) {
        const r = this.usage.get(a.providerUuid)?.get(rc);
        if (r) r.used += n;
      }
    }
  }

  free(providerUuid: string, rc: string): { free: number; capacity: number } | undefined {
    const r = this.usage.get(providerUuid)?.get(rc);
    return r ? { free: r.capacity - r.used, capacity: r.capacity } : undefined;
  }
}

export class Scheduler {
  constructor(
    private readonly placement: Placement,
    private readonly finder: AllocationCandidates,
    private readonly options: SchedulerOptions,
    private readonly notify: AllocationNotifier,
  ) {}

  private candidateQuery(spec: RequestSpec): CandidateQuery {
    const groups: RequestGroupSpec[] = [
      {
        suffix: "",
        resources: spec.resources,
        requiredTraits: spec.requiredTraits,
        forbiddenTraits: spec.forbiddenTraits,
        memberOf: spec.requiredAggregates,
      },
      ...spec.extraGroups,
    ];
    const sortClass = ["MEMORY_MB", "VCPU"].find((rc) => spec.resources[rc] !== undefined);
    return {
      groups,
      groupPolicy: spec.extraGroups.length ? "none" : undefined,
      limit: this.options.candidateLimit,
      order: sortClass
        ? { resourceClass: sortClass, direction: spec.weigher === "pack" ? "least_free" : "most_free" }
        : undefined,
      rootNamesIn: spec.forceHosts.length ? spec.forceHosts : undefined,
      rootNamesNotIn: spec.ignoreHosts.length ? spec.ignoreHosts : undefined,
    };
  }

  private validate(spec: RequestSpec): RequestSpec {
    if (!spec.instanceUuids.length) throw invalidInput("RequestSpec needs at least one instance uuid");
    const uuids = spec.instanceUuids.map((u) => assertUuid(u, "instance uuid"));
    if (new Set(uuids).size !== uuids.length) throw invalidInput("instance uuids must be distinct");
    if (!spec.projectId) throw invalidInput("RequestSpec needs a project_id");
    if (!Object.keys(spec.resources).length) throw invalidInput("RequestSpec needs resources (the flavor's)");
    if (spec.maxAlternates < 0) throw invalidInput("max_alternates must not be negative");
    return { ...spec, instanceUuids: uuids };
  }

  async selectDestinations(input: RequestSpec): Promise<InstanceDestination[]> {
    const spec = this.validate(input);
    const query = this.candidateQuery(spec);
    const maxAlternates = spec.maxAlternates || this.options.maxAlternates;
    const view = new LocalView();
    const first = Math.min(
      this.options.candidateLimit,
      spec.instanceUuids.length + maxAlternates + SPARE_HOSTS,
    );
    let hosts = await this.fetchHosts({ ...query, limit: first }, view);
    const done: InstanceDestination[] = [];
    try {
      for (const instanceUuid of spec.instanceUuids) {
        let placed: InstanceDestination | undefined;
        for (let round = 0; round < ROUNDS && !placed; round++) {
          if (round > 0) hosts = await this.fetchHosts(query, view);
          placed = await this.placeOne(spec, instanceUuid, hosts, view, maxAlternates);
          if (!placed && !hosts.length) break;
        }
        if (!placed) {
          const reason = await explainNoCandidates(this.placement.db, query);
          throw new StratusError(
            "no_valid_host",
            `No valid host was found. There are not enough hosts available: ${reason}.${
              done.length
                ? ` (${done.length} of ${spec.instanceUuids.length} instances could be placed; released.)`
                : ""
            }`,
          );
        }
        done.push(placed);
      }
    } catch (err) {
      for (const d of done) await this.releaseClaims(d.instanceUuid).catch(() => undefined);
      throw err;
    }
    return done;
  }

  private async fetchHosts(query: CandidateQuery, view: LocalView): Promise<HostOption[]> {
    const result = await this.finder.list(query);
    view.absorb(result.summaries);
    const names = new Map(result.summaries.map((s) => [s.uuid, s.name]));
    const byRoot = new Map<string, HostOption>();
    for (const c of result.candidates) {
      let h = byRoot.get(c.rootUuid);
      if (!h) {
        h = { host: names.get(c.rootUuid) ?? c.rootUuid, rootUuid: c.rootUuid, candidates: [] };
        byRoot.set(c.rootUuid, h);
      }
      h.candidates.push(c);
    }
    return [...byRoot.values()];
  }

  /** Ranks the hosts that still fit (as this request sees them) and the way each would be used. */
  private rank(hosts: HostOption[], view: LocalView, weigher: WeigherKind, exclude: Set<string>) {
    const fitting = hosts
      .filter((h) => !exclude.has(h.rootUuid))
      .map((h) => ({ host: h, candidate: h.candidates.find((c) => view.fits(c.allocations)) }))
      .filter((x): x is { host: HostOption; candidate: Candidate } => x.candidate !== undefined);
    const states: HostState[] = fitting.map(({ host, candidate }) => {
      const ram = view.free(host.rootUuid, "MEMORY_MB");
      const cpu = view.free(host.rootUuid, "VCPU");
      const ips = candidate.allocations
        .filter((a) => a.providerUuid !== host.rootUuid && a.resources.IPV4_ADDRESS !== undefined)
        .map((a) => view.free(a.providerUuid, "IPV4_ADDRESS")?.free ?? 0);
      return {
        host: host.host,
        ramFree: ram?.free ?? 0,
        ramCapacity: ram?.capacity ?? 0,
        vcpuFree: cpu?.free ?? 0,
        vcpuCapacity: cpu?.capacity ?? 0,
        ipFree: ips.length ? Math.min(...ips) : undefined,
      };
    });
    const weights = weighHosts(states, weigher);
    // Equal weights (a fresh cloud) are broken at random so that concurrent schedulers spread out.
    const jitter = fitting.map(() => Math.random() * 1e-6);
    return fitting
      .map((f, i) => ({ ...f, weight: weights[i]! + jitter[i]! }))
      .sort((a, b) => b.weight - a.weight);
  }

  private async placeOne(
    spec: RequestSpec,
    instanceUuid: string,
    hosts: HostOption[],
    view: LocalView,
    maxAlternates: number,
  ): Promise<InstanceDestination | undefined> {
    const lost = new Set<string>();
    const ranked = this.rank(hosts, view, spec.weigher, lost);
    for (let i = 0; i < ranked.length; i++) {
      const { host, candidate } = ranked[i]!;
      try {
        const claim = {
          consumerUuid: instanceUuid,
          allocations: candidate.allocations,
          projectId: spec.projectId,
          userId: spec.userId,
        };
        // One statement for a new consumer; a consumer that holds something is replaced.
        if (!(await this.placement.claimNew(claim))) {
          await this.placement.putAllocations({ ...claim, expectedGeneration: "any" });
        }
      } catch (err) {
        // Another scheduler took the room (conflict) or the provider went away: next host.
        if (isStratusError(err, "conflict") || isStratusError(err, "invalid_input")) {
          lost.add(host.rootUuid);
          continue;
        }
        throw err;
      }
      view.take(candidate.allocations);
      this.notify({
        consumerUuid: instanceUuid,
        providerUuids: candidate.allocations.map((a) => a.providerUuid),
        claimed: true,
        host: host.host,
      });
      const alternates: Selection[] = [];
      for (const other of this.rank(hosts, view, spec.weigher, new Set([...lost, host.rootUuid]))) {
        if (alternates.length >= maxAlternates) break;
        alternates.push(selectionOf(other.host, other.candidate));
      }
      return { instanceUuid, selected: selectionOf(host, candidate), alternates };
    }
    return undefined;
  }

  /**
   * Makes the consumer hold exactly the selection's allocations (dropping whatever it held, e.g.
   * the failed host's claim). Idempotent: holding the same already succeeds without a write.
   */
  async claimSelection(input: {
    consumerUuid: string;
    projectId: string;
    userId: string;
    selection: Selection;
  }): Promise<number> {
    const consumer = assertUuid(input.consumerUuid, "consumer uuid");
    const wanted = groupAllocations(mergeAllocations(input.selection.allocations));
    if (!wanted.length) throw invalidInput("the selection has no allocations");
    const held = await this.placement.getAllocations(consumer);
    if (held.consumerGeneration > 0 && canonical(held.allocations) === canonical(wanted)) {
      return held.consumerGeneration;
    }
    const projectId = input.projectId || held.projectId;
    if (!projectId) throw invalidInput("project_id is required to claim for a new consumer");
    let written: Awaited<ReturnType<Placement["putAllocations"]>>;
    try {
      written = await this.placement.putAllocations({
        consumerUuid: consumer,
        allocations: wanted,
        projectId,
        userId: input.userId || held.userId,
        expectedGeneration: "any",
      });
    } catch (err) {
      if (isStratusError(err, "conflict")) {
        throw new StratusError(
          "conflict",
          `The selection on host ${input.selection.host} can no longer be claimed: ${err.message}`,
        );
      }
      throw err;
    }
    this.notify({
      consumerUuid: consumer,
      providerUuids: written.providerUuids,
      claimed: true,
      host: input.selection.host,
    });
    return written.consumerGeneration;
  }

  /** Drops everything the consumer holds. Idempotent. */
  async releaseClaims(consumerUuid: string): Promise<void> {
    const written = await this.placement.deleteAllocations(consumerUuid);
    if (written.providerUuids.length) {
      this.notify({ consumerUuid, providerUuids: written.providerUuids, claimed: false, host: "" });
    }
  }
}

/** Allocations as a comparable string: providers and classes in order, amounts summed. */
function canonical(allocations: ProviderAllocation[]): string {
  return mergeAllocations(allocations)
    .map((a) => `${a.providerUuid}/${a.resourceClass}=${a.amount}`)
    .sort()
    .join(";");
}

function selectionOf(host: HostOption, candidate: Candidate): Selection {
  return { host: host.host, computeNodeUuid: host.rootUuid, allocations: candidate.allocations };
}
