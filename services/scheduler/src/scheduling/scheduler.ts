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
  /**
   * How long the hosts fetched for one request shape serve the next requests of that shape,
   * kept up to date with this scheduler's own claims (0: every request fetches its own).
   */
  poolTtlMs: number;
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

/** A provider's amount of one class as this scheduler sees it. */
interface Usage {
  capacity: number;
  used: number;
}

/** One way a host can take an instance, with the usage records its amounts come out of. */
interface Way {
  candidate: Candidate;
  needs: { usage: Usage; amount: number }[];
  /** The IPV4_ADDRESS usage of the sharing providers (segments) this way takes addresses from. */
  ips: Usage[];
}

/** One host with the ways (allocation requests) it can take an instance. */
interface HostOption {
  host: string;
  rootUuid: string;
  ways: Way[];
  ram?: Usage;
  vcpu?: Usage;
}

const fits = (way: Way) => way.needs.every((n) => n.usage.used + n.amount <= n.usage.capacity);

/** The amounts of a way taken from (sign 1) or given back to (-1) the view. */
function take(way: Way, sign = 1): void {
  for (const n of way.needs) n.usage.used += sign * n.amount;
}

/**
 * The hosts one candidate search returned and the free/used of their providers as this scheduler
 * has seen them since: its claims are taken from the view as they are made. A claim is still
 * checked by the database, so a stale pool costs a lost race (the host is dropped from the pool),
 * never an over-commit.
 */
interface Pool {
  hosts: HostOption[];
  /** Hosts where a claim lost a race (another scheduler took the room) or the provider went away. */
  lost: Set<string>;
  /** `placement.version` when the search began: a write since then (not a claim) makes it stale. */
  version: number;
  fetchedAt: number;
  /** The search hit its limit: hosts outside the pool may qualify too. */
  partial: boolean;
  /** `claimsGivenBack` when the search began. */
  givenBack: number;
  /**
   * For a partial most-free search, the order class's free amount on the last host returned: no
   * host outside the pool had more. When no host of the pool has this much left, hosts outside
   * it may be better, and the pool is fetched again.
   */
  floor?: { resourceClass: string; free: number };
}

/**
 * Pools kept, one per request shape (flavor, groups, order, forced hosts): a routed network's
 * segments each make a shape, and a cloud has many (bench/placement: 100; at 64 pools the
 * searches for 100 segments evicted each other's pools and ran 3 times as often).
 */
const MAX_POOLS = 1024;

const ROUNDS = 3;
/**
 * Hosts fetched beyond instances + alternates in the first round. The candidate query already
 * orders by free RAM/VCPU (the weighers' main term), so a few spare hosts are enough to weigh,
 * to move on when another scheduler wins a race, and to spread concurrent requests (equal hosts
 * come back in random order). Later rounds fetch `candidateLimit`.
 */
const SPARE_HOSTS = 8;

/** Free/used of the providers one search returned; claims are taken from these records. */
class LocalView {
  private readonly usage = new Map<string, Map<string, Usage>>();

  /** The providers as the search saw them, plus `extra` used (claims not committed yet). */
  absorb(summaries: ProviderSummary[], extra: (providerUuid: string, rc: string) => number): void {
    for (const s of summaries) {
      this.usage.set(
        s.uuid,
        new Map(
          Object.entries(s.resources).map(([rc, r]) => [
            rc,
            { capacity: r.capacity, used: r.used + extra(s.uuid, rc) },
          ]),
        ),
      );
    }
  }

  get(providerUuid: string, rc: string): Usage | undefined {
    return this.usage.get(providerUuid)?.get(rc);
  }

  /** A candidate's amounts bound to this view's records (undefined: a provider it never saw). */
  way(candidate: Candidate, rootUuid: string): Way | undefined {
    const needs: Way["needs"] = [];
    const ips: Usage[] = [];
    for (const a of candidate.allocations) {
      for (const [rc, amount] of Object.entries(a.resources)) {
        const usage = this.get(a.providerUuid, rc);
        if (!usage) return undefined;
        needs.push({ usage, amount });
        if (rc === "IPV4_ADDRESS" && a.providerUuid !== rootUuid) ips.push(usage);
      }
    }
    return { candidate, needs, ips };
  }
}

export class Scheduler {
  /** Pools by request shape (poolKey). */
  private readonly pools = new Map<string, Pool>();
  /** The searches in flight for shared pools, by shape. */
  private readonly searching = new Map<string, Promise<Pool>>();
  /** Why the last request of a shape found no host, while nothing was written meanwhile. */
  private readonly refusals = new Map<
    string,
    { reason: Promise<string>; version: number; fetchedAt: number }
  >();
  /**
   * Amounts of this scheduler's claims being written, by provider and class: a search that runs
   * meanwhile does not see them yet, so a pool made from it counts them as used (two pools of
   * one shape, the old one still in use, would otherwise hand out the same room twice).
   */
  private readonly inFlight = new Map<string, number>();
  /** Claims that failed after their amounts were taken from a view (the room came back). */
  private claimsGivenBack = 0;

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
    // A shared pool answers every request of its shape; ignore_hosts (a reschedule) is applied to
    // it by name, so the shape leaves it out.
    const key = this.options.poolTtlMs > 0 ? poolKey({ ...query, rootNamesNotIn: undefined }) : undefined;
    const ignored = new Set(spec.ignoreHosts);
    let pool = key === undefined ? undefined : this.cachedPool(key);
    let fetched = 0;
    const done: InstanceDestination[] = [];
    try {
      for (const instanceUuid of spec.instanceUuids) {
        let placed: InstanceDestination | undefined;
        for (;;) {
          if (!pool || (fetched === 0 && !this.serves(pool, ignored, maxAlternates))) {
            if (fetched >= ROUNDS) break;
            if (fetched === 0 && pool !== undefined && this.stillNone(pool)) {
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
            pool = await this.fetchPool({ ...query, limit }, ignored.size ? undefined : key);
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
    if (known && this.fresh(known)) return known.reason;
    // Shared while it runs too: the requests refused together ask at the same time.
    const reason = explainNoCandidates(this.placement.db, query, { searchFoundNone });
    if (this.refusals.size >= MAX_POOLS) this.refusals.clear();
    const entry = { reason, version, fetchedAt: Date.now() };
    this.refusals.set(key, entry);
    reason.catch(() => {
      if (this.refusals.get(key) === entry) this.refusals.delete(key);
    });
    return reason;
  }

  private reserve(allocations: ProviderAllocation[], sign: 1 | -1): void {
    for (const a of allocations) {
      for (const [rc, n] of Object.entries(a.resources)) {
        const key = `${a.providerUuid}/${rc}`;
        const left = (this.inFlight.get(key) ?? 0) + sign * n;
        if (left > 0) this.inFlight.set(key, left);
        else this.inFlight.delete(key);
      }
    }
  }

  /**
   * On PGlite a search that found nothing still finds nothing while the only placement writes
   * since are new claims (they take room, never give it) and no claim has failed after taking
   * its amounts: there is one scheduler process, and every placement write goes through it and
   * moves `placement.version`. The requests refused after a segment fills up then share that
   * search instead of each running its own (on PostgreSQL, where another scheduler's write is
   * only heard of by its event, a refusal still follows a search of its own or one in flight).
   */
  private stillNone(pool: Pool): boolean {
    return (
      this.placement.db.kind === "pglite" &&
      pool.hosts.length === 0 &&
      pool.version === this.placement.version &&
      pool.givenBack === this.claimsGivenBack
    );
  }

  /** Read since the last placement write and within the pool TTL. */
  private fresh(entry: { version: number; fetchedAt: number }, now = Date.now()): boolean {
    return entry.version === this.placement.version && now - entry.fetchedAt <= this.options.poolTtlMs;
  }

  private cachedPool(key: string): Pool | undefined {
    const pool = this.pools.get(key);
    if (!pool || this.fresh(pool)) return pool;
    this.pools.delete(key);
    return undefined;
  }

  /**
   * Whether a pool fetched for an earlier request can answer this one as a fresh search would:
   * it still has a host that fits and, when the search stopped at its limit, enough hosts for the
   * alternates and one at least as free as any host it left out.
   */
  private serves(pool: Pool, ignored: Set<string>, maxAlternates: number): boolean {
    if (pool.version !== this.placement.version) return false;
    const floor = pool.floor;
    let fitting = 0;
    let asFree = !floor;
    for (const h of pool.hosts) {
      if (pool.lost.has(h.rootUuid) || ignored.has(h.host) || !h.ways.some(fits)) continue;
      fitting++;
      if (!pool.partial) return true;
      if (floor && !asFree) asFree = free(usageOf(h, floor.resourceClass)) >= floor.free;
      if (asFree && fitting >= 1 + maxAlternates) return true;
    }
    return false;
  }

  /** A search for a shared pool joins the one in flight for its shape, if any. */
  private fetchPool(query: CandidateQuery, key: string | undefined): Promise<Pool> {
    if (key === undefined) return this.search(query, undefined);
    let pending = this.searching.get(key);
    if (!pending) {
      pending = this.search(query, key).finally(() => this.searching.delete(key));
      this.searching.set(key, pending);
    }
    return pending;
  }

  private async search(query: CandidateQuery, key: string | undefined): Promise<Pool> {
    const version = this.placement.version;
    const givenBack = this.claimsGivenBack;
    const limit = query.limit ?? this.options.candidateLimit;
    const result = await this.finder.list(query);
    const view = new LocalView();
    view.absorb(result.summaries, (uuid, rc) => this.inFlight.get(`${uuid}/${rc}`) ?? 0);
    const names = new Map(result.summaries.map((s) => [s.uuid, s.name]));
    const byRoot = new Map<string, HostOption>();
    for (const c of result.candidates) {
      let h = byRoot.get(c.rootUuid);
      if (!h) {
        h = {
          host: names.get(c.rootUuid) ?? c.rootUuid,
          rootUuid: c.rootUuid,
          ways: [],
          ram: view.get(c.rootUuid, "MEMORY_MB"),
          vcpu: view.get(c.rootUuid, "VCPU"),
        };
        byRoot.set(c.rootUuid, h);
      }
      const way = view.way(c, c.rootUuid);
      if (way) h.ways.push(way);
    }
    const hosts = [...byRoot.values()].filter((h) => h.ways.length);
    const partial = result.candidates.length >= limit || hosts.length >= limit;
    const last = hosts.at(-1);
    const order = query.order;
    const pool: Pool = {
      hosts,
      lost: new Set(),
      version,
      fetchedAt: Date.now(),
      partial,
      givenBack,
      floor:
        partial && last && order?.direction === "most_free"
          ? {
              resourceClass: order.resourceClass,
              free: free(view.get(last.rootUuid, order.resourceClass)),
            }
          : undefined,
    };
    if (key !== undefined) {
      this.pools.delete(key);
      if (this.pools.size >= MAX_POOLS) {
        const now = Date.now();
        for (const [k, p] of this.pools) if (!this.fresh(p, now)) this.pools.delete(k);
        if (this.pools.size >= MAX_POOLS) this.pools.delete(this.pools.keys().next().value!);
      }
      this.pools.set(key, pool);
    }
    return pool;
  }

  /** Ranks the hosts that still fit (as this scheduler sees them) and the way each would be used. */
  private rank(hosts: HostOption[], weigher: WeigherKind, exclude: Set<string>, ignoredNames: Set<string>) {
    const fitting: { host: HostOption; way: Way }[] = [];
    for (const host of hosts) {
      if (exclude.has(host.rootUuid) || ignoredNames.has(host.host)) continue;
      const way = host.ways.find(fits);
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
      if (pool.lost.has(host.rootUuid) || !fits(way)) continue;
      // Taken before the claim is written, so that requests running meanwhile weigh without it.
      take(way);
      const allocations = way.candidate.allocations;
      this.reserve(allocations, 1);
      try {
        const claim = {
          consumerUuid: instanceUuid,
          allocations,
          projectId: spec.projectId,
          userId: spec.userId,
        };
        // One statement for a new consumer; a consumer that holds something is replaced.
        if (!(await this.placement.claimNew(claim))) {
          await this.placement.putAllocations({ ...claim, expectedGeneration: "any" });
        }
      } catch (err) {
        this.reserve(allocations, -1);
        take(way, -1);
        this.claimsGivenBack++;
        // Another scheduler took the room (conflict) or the provider went away: next host.
        if (isStratusError(err, "conflict") || isStratusError(err, "invalid_input")) {
          pool.lost.add(host.rootUuid);
          continue;
        }
        throw err;
      }
      this.reserve(allocations, -1);
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
        const w = fits(other.way) ? other.way : other.host.ways.find(fits);
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

const free = (u: Usage | undefined) => (u ? u.capacity - u.used : 0);

function usageOf(host: HostOption, rc: string): Usage | undefined {
  return rc === "MEMORY_MB" ? host.ram : rc === "VCPU" ? host.vcpu : undefined;
}

/** A request shape as a map key: the candidate query without its limit. */
function poolKey(query: CandidateQuery): string {
  return JSON.stringify({ ...query, limit: undefined });
}

function selectionOf(host: HostOption, candidate: Candidate): Selection {
  return { host: host.host, computeNodeUuid: host.rootUuid, allocations: candidate.allocations };
}
