// Host pools: the hosts one candidate search found, kept per request shape (flavor, groups,
// order, forced hosts) to answer the next SelectDestinations of that shape, with the free/used of
// their providers as this scheduler has seen them since. Its claims are taken from a pool as they
// are made, before they are written, so that requests in flight at the same time weigh each
// other's claims and spread. A claim is still checked by the database, so a stale pool costs a
// lost race (the host is dropped from the pool), never an over-commit. Any other placement write
// (Placement.version) makes every pool stale.
import type { ProviderAllocation } from "../placement/allocations.js";
import type { AllocationCandidates } from "../placement/candidates/allocation-candidates.js";
import type { Candidate } from "../placement/candidates/assembly.js";
import type { CandidateQuery } from "../placement/candidates/request.js";
import type { ProviderSummary } from "../placement/candidates/trees.js";

export interface HostPoolOptions {
  /** Candidates fetched per round after the first (Nova's max_placement_results). */
  candidateLimit: number;
  /**
   * How long the hosts fetched for one request shape serve the next requests of that shape,
   * kept up to date with this scheduler's own claims (0: every request fetches its own).
   */
  poolTtlMs: number;
  /**
   * Every placement write goes through this scheduler (and moves Placement.version): then a
   * search that found nothing still finds nothing until such a write or a failed claim (new
   * claims only take room), and the requests refused after it share it instead of each running
   * its own. Where other schedulers may write placement, their claims and releases are only
   * heard of by their events, and a refusal always follows a search of its own or one in flight.
   */
  soleWriterOfPlacement: boolean;
}

/** A provider's amount of one class as this scheduler sees it. */
export interface Usage {
  capacity: number;
  used: number;
}

/** One way a host can take an instance, with the usage records its amounts come out of. */
export interface Way {
  candidate: Candidate;
  needs: { usage: Usage; amount: number }[];
  /** The IPV4_ADDRESS usage of the sharing providers (segments) this way takes addresses from. */
  ips: Usage[];
}

/** One host with the ways (allocation requests) it can take an instance. */
export interface HostOption {
  host: string;
  rootUuid: string;
  ways: Way[];
  ram?: Usage;
  vcpu?: Usage;
}

/** Whether a way's amounts still fit what this scheduler sees free. */
export const wayFits = (way: Way) => way.needs.every((n) => n.usage.used + n.amount <= n.usage.capacity);

export const free = (u: Usage | undefined) => (u ? u.capacity - u.used : 0);

/** The amounts of a way taken from (sign 1) or given back to (-1) the view. */
function take(way: Way, sign = 1): void {
  for (const n of way.needs) n.usage.used += sign * n.amount;
}

/**
 * The hosts one candidate search returned and the free/used of their providers as this scheduler
 * has seen them since: its claims are taken from the view as they are made.
 */
export interface Pool {
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
 * Request shapes kept (pools, and the reasons of refusals): a routed network's segments each make
 * a shape, and a cloud has many; too few, and the searches of many segments evict each other's
 * pools (docs/performance.md, "Host pools").
 */
export const MAX_SHAPES = 1024;

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

/** The pools of one scheduler, and the claims it is writing from them. */
export class HostPools {
  /** Pools by request shape (poolKey). */
  private readonly pools = new Map<string, Pool>();
  /** The searches in flight for shared pools, by shape. */
  private readonly searching = new Map<string, Promise<Pool>>();
  /**
   * Amounts of this scheduler's claims being written, by provider and class: a search that runs
   * meanwhile does not see them yet, so a pool made from it counts them as used (two pools of
   * one shape, the old one still in use, would otherwise hand out the same room twice).
   */
  private readonly inFlight = new Map<string, number>();
  /** Claims that failed after their amounts were taken from a view (the room came back). */
  private claimsGivenBack = 0;

  /** `placementVersion`: Placement.version, the placement writes other than claims. */
  constructor(
    private readonly finder: Pick<AllocationCandidates, "list">,
    private readonly placementVersion: () => number,
    private readonly options: HostPoolOptions,
  ) {}

  /** Read since the last placement write and within the pool TTL. */
  fresh(entry: { version: number; fetchedAt: number }, now = Date.now()): boolean {
    return entry.version === this.placementVersion() && now - entry.fetchedAt <= this.options.poolTtlMs;
  }

  /** The pool kept for a shape, while it is fresh. */
  cached(key: string): Pool | undefined {
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
  serves(pool: Pool, ignored: Set<string>, maxAlternates: number): boolean {
    if (pool.version !== this.placementVersion()) return false;
    const floor = pool.floor;
    let fitting = 0;
    let asFree = !floor;
    for (const h of pool.hosts) {
      if (pool.lost.has(h.rootUuid) || ignored.has(h.host) || !h.ways.some(wayFits)) continue;
      fitting++;
      if (!pool.partial) return true;
      if (floor && !asFree) asFree = free(usageOf(h, floor.resourceClass)) >= floor.free;
      if (asFree && fitting >= 1 + maxAlternates) return true;
    }
    return false;
  }

  /**
   * A search that found nothing still finds nothing while the only placement writes since are
   * new claims (they take room, never give it) and no claim has failed after taking its amounts,
   * provided this scheduler makes every placement write (soleWriterOfPlacement). The requests
   * refused after a segment fills up then share that search instead of each running its own.
   */
  stillNone(pool: Pool): boolean {
    return (
      this.options.soleWriterOfPlacement &&
      pool.hosts.length === 0 &&
      pool.version === this.placementVersion() &&
      pool.givenBack === this.claimsGivenBack
    );
  }

  /** A search for a shared pool joins the one in flight for its shape, if any. */
  fetch(query: CandidateQuery, key: string | undefined): Promise<Pool> {
    if (key === undefined) return this.search(query, undefined);
    let pending = this.searching.get(key);
    if (!pending) {
      pending = this.search(query, key).finally(() => this.searching.delete(key));
      this.searching.set(key, pending);
    }
    return pending;
  }

  /** Takes a way's amounts from its pool before its claim is written, and counts them in flight. */
  take(way: Way): void {
    take(way);
    this.reserve(way.candidate.allocations, 1);
  }

  /** The claim of a taken way is written: its amounts are in the database now. */
  claimed(way: Way): void {
    this.reserve(way.candidate.allocations, -1);
  }

  /** The claim of a taken way failed: its amounts go back to the pool. */
  givenBack(way: Way): void {
    this.reserve(way.candidate.allocations, -1);
    take(way, -1);
    this.claimsGivenBack++;
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

  private async search(query: CandidateQuery, key: string | undefined): Promise<Pool> {
    const version = this.placementVersion();
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
      if (this.pools.size >= MAX_SHAPES) {
        const now = Date.now();
        for (const [k, p] of this.pools) if (!this.fresh(p, now)) this.pools.delete(k);
        if (this.pools.size >= MAX_SHAPES) this.pools.delete(this.pools.keys().next().value!);
      }
      this.pools.set(key, pool);
    }
    return pool;
  }
}

function usageOf(host: HostOption, rc: string): Usage | undefined {
  return rc === "MEMORY_MB" ? host.ram : rc === "VCPU" ? host.vcpu : undefined;
}

/** A request shape as a map key: the candidate query without its limit. */
export function poolKey(query: CandidateQuery): string {
  return JSON.stringify({ ...query, limit: undefined });
}
