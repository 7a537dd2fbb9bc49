// SelectDestinations: allocation candidates → filters → weighers → atomic claim per instance
// (consumer = instance uuid) with alternates; ClaimSelection / ReleaseClaims for reschedules.
// A claim is placement's allocation write: it locks the providers and re-checks capacity, so when
// another scheduler won the race the claim fails cleanly and the next host is tried.
import { invalidInput, isStratusError, StratusError } from "@stratus/runtime";
import type { AllocationNotifier } from "../placement/allocation-events.js";
import {
  type AllocationsWritten,
  groupAllocations,
  mergeAllocations,
  type ProviderAllocation,
} from "../placement/allocations.js";
import type { AllocationCandidates } from "../placement/candidates/allocation-candidates.js";
import type { Candidate } from "../placement/candidates/assembly.js";
import { explainNoCandidates } from "../placement/candidates/explain-no-candidates.js";
import type { CandidateQuery, RequestGroupSpec } from "../placement/candidates/request.js";
import { assertUuid } from "../placement/names.js";
import type { Placement } from "../placement/placement.js";
import {
  free,
  type HostOption,
  type HostPoolOptions,
  HostPools,
  MAX_SHAPES,
  type Pool,
  poolKey,
  type Way,
  wayFits,
} from "./host-pool.js";
import { type HostState, type WeigherKind, weighHosts } from "./weighers.js";

export interface SchedulerOptions extends HostPoolOptions {
  /** Alternates per instance when the request does not say (Nova: max_attempts - 1). */
  maxAlternates: number;
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

const ROUNDS = 3;
/**
 * Hosts fetched beyond instances + alternates in the first round. The candidate query already
 * orders by free RAM/VCPU (the weighers' main term), so a few spare hosts are enough to weigh,
 * to move on when another scheduler wins a race, and to spread concurrent requests (equal hosts
 * come back in random order). Later rounds fetch `candidateLimit`.
 */
const SPARE_HOSTS = 8;

export class Scheduler {
  private readonly pools: HostPools;
  /** Why the last request of a shape found no host, while nothing was written meanwhile. */
  private readonly refusals = new Map<
    string,
    { reason: Promise<string>; version: number; fetchedAt: number }
  >();

  constructor(
    private readonly placement: Placement,
    finder: AllocationCandidates,
    private readonly options: SchedulerOptions,
    private readonly notify: AllocationNotifier,
  ) {
    this.pools = new HostPools(finder, () => placement.version, options);
  }

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
    // A shared pool answers every request of its shape; ignore_hosts (a reschedule) is applied to
    // it by name, so the shape leaves it out.
    const key = this.options.poolTtlMs > 0 ? poolKey({ ...query, rootNamesNotIn: undefined }) : undefined;
    const ignored = new Set(spec.ignoreHosts);
    let pool = key === undefined ? undefined : this.pools.cached(key);
    let fetched = 0;
    const done: InstanceDestination[] = [];
    try {
      for (const instanceUuid of spec.instanceUuids) {
        let placed: InstanceDestination | undefined;
        for (;;) {
          if (!pool || (fetched === 0 && !this.pools.serves(pool, ignored, maxAlternates))) {
            if (fetched >= ROUNDS) break;
            if (fetched === 0 && pool !== undefined && this.pools.stillNone(pool)) {
              // As good as a fresh search: nothing since could have made room (stillNone).
              fetched++;
              continue;
            }
            // A search for this request alone first asks for just enough hosts to weigh.
            const limit =
              (key === undefined || ignored.size) && fetched === 0
                ? Math.min(
                    this.options.candidateLimit,
                    spec.instanceUuids.length + maxAlternates + SPARE_HOSTS,
                  )
                : this.options.candidateLimit;
            pool = await this.pools.fetch({ ...query, limit }, ignored.size ? undefined : key);
            fetched++;
          }
          placed = await this.placeOne(spec, instanceUuid, pool, ignored, maxAlternates);
          if (placed || (fetched > 0 && !pool.hosts.length)) break;
          pool = undefined;
        }
        if (!placed) {
          // The last search for this request found nothing at all (not: every host lost a race).
          const reason = await this.explain(query, pool !== undefined && pool.hosts.length === 0);
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

  /**
   * The reason for a NoValidHost (several queries, each narrowing down the cause). A search has
   * just found no host; a request of the same shape refused within the pool TTL, with no
   * placement write through this scheduler since, has the same reason (a segment that ran out
   * is refused to every request still asking for it).
   */
  private async explain(query: CandidateQuery, searchFoundNone: boolean): Promise<string> {
    const key = poolKey(query);
    const version = this.placement.version;
    const known = this.refusals.get(key);
    if (known && this.pools.fresh(known)) return known.reason;
    // Shared while it runs too: the requests refused together ask at the same time.
    const reason = explainNoCandidates(this.placement.db, query, { searchFoundNone });
    if (this.refusals.size >= MAX_SHAPES) this.refusals.clear();
    const entry = { reason, version, fetchedAt: Date.now() };
    this.refusals.set(key, entry);
    reason.catch(() => {
      if (this.refusals.get(key) === entry) this.refusals.delete(key);
    });
    return reason;
  }

  /** Ranks the hosts that still fit (as this scheduler sees them) and the way each would be used. */
  private rank(hosts: HostOption[], weigher: WeigherKind, exclude: Set<string>, ignoredNames: Set<string>) {
    const fitting: { host: HostOption; way: Way }[] = [];
    for (const host of hosts) {
      if (exclude.has(host.rootUuid) || ignoredNames.has(host.host)) continue;
      const way = host.ways.find(wayFits);
      if (way) fitting.push({ host, way });
    }
    const states: HostState[] = fitting.map(({ host, way }) => ({
      host: host.host,
      ramFree: free(host.ram),
      ramCapacity: host.ram?.capacity ?? 0,
      vcpuFree: free(host.vcpu),
      vcpuCapacity: host.vcpu?.capacity ?? 0,
      ipFree: way.ips.length ? Math.min(...way.ips.map(free)) : undefined,
    }));
    const weights = weighHosts(states, weigher);
    // Equal weights (a fresh cloud) are broken at random so that concurrent schedulers spread out.
    return fitting
      .map((f, i) => ({ ...f, weight: weights[i]! + Math.random() * 1e-6 }))
      .sort((a, b) => b.weight - a.weight);
  }

  private async placeOne(
    spec: RequestSpec,
    instanceUuid: string,
    pool: Pool,
    ignored: Set<string>,
    maxAlternates: number,
  ): Promise<InstanceDestination | undefined> {
    const ranked = this.rank(pool.hosts, spec.weigher, pool.lost, ignored);
    for (let i = 0; i < ranked.length; i++) {
      const { host, way } = ranked[i]!;
      // Other requests on the pool may have taken the room while this one awaited a claim.
      if (pool.lost.has(host.rootUuid) || !wayFits(way)) continue;
      // Taken before the claim is written, so that requests running meanwhile weigh without it.
      this.pools.take(way);
      const allocations = way.candidate.allocations;
      try {
        const claim = {
          consumerUuid: instanceUuid,
          allocations,
          projectId: spec.projectId,
          userId: spec.userId,
        };
        // One statement for a new consumer; a consumer that holds something is replaced.
        if (!(await this.placement.claims.claimNew(claim))) {
          await this.placement.allocations.put({ ...claim, expectedGeneration: "any" });
        }
      } catch (err) {
        this.pools.givenBack(way);
        // Another scheduler took the room (conflict) or the provider went away: next host.
        if (isStratusError(err, "conflict") || isStratusError(err, "invalid_input")) {
          pool.lost.add(host.rootUuid);
          continue;
        }
        throw err;
      }
      this.pools.claimed(way);
      this.notify({
        consumerUuid: instanceUuid,
        providerUuids: allocations.map((a) => a.providerUuid),
        claimed: true,
        host: host.host,
      });
      // The alternates: the next hosts of the ranking that still fit, with a way that fits now.
      const alternates: Selection[] = [];
      for (const other of ranked.slice(i + 1)) {
        if (alternates.length >= maxAlternates) break;
        if (pool.lost.has(other.host.rootUuid)) continue;
        const w = wayFits(other.way) ? other.way : other.host.ways.find(wayFits);
        if (w) alternates.push(selectionOf(other.host, w.candidate));
      }
      return { instanceUuid, selected: selectionOf(host, way.candidate), alternates };
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
    const held = await this.placement.allocations.get(consumer);
    if (held.consumerGeneration > 0 && canonical(held.allocations) === canonical(wanted)) {
      return held.consumerGeneration;
    }
    const projectId = input.projectId || held.projectId;
    if (!projectId) throw invalidInput("project_id is required to claim for a new consumer");
    let written: AllocationsWritten;
    try {
      written = await this.placement.allocations.put({
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
    const written = await this.placement.allocations.delete(consumerUuid);
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
