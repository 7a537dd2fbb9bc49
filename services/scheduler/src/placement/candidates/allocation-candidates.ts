// Allocation candidates (Placement's GET /allocation_candidates, reference §7.6), computed in the
// database: one statement finds the provider trees (roots) that can satisfy every request group
// and returns them with their providers (search-sql.ts, trees.ts); `assembleCandidates` then picks
// the concrete providers per group in memory (assembly.ts).
import { invalidInput, type Queryable } from "@stratus/runtime";
import { GENERIC_PLAN } from "../statements.js";
import { assembleCandidates, type Candidate } from "./assembly.js";
import { type CandidateQuery, type RequestGroupSpec, validateQuery } from "./request.js";
import { candidatesQuery } from "./search-sql.js";
import { type ProviderRow, type ProviderSummary, readTrees, summarize } from "./trees.js";

export interface CandidateResult {
  candidates: Candidate[];
  summaries: ProviderSummary[];
}

/** The classes sharing providers hold, and whether a provider that is not a sharing root does too. */
const HELD_CLASSES_SQL = `SELECT c.rc, EXISTS (SELECT 1 FROM inventories i JOIN resource_providers p ON p.id = i.provider_id
    WHERE i.resource_class = c.rc AND NOT (p.shares AND p.id = p.root_id)) AS elsewhere
  FROM (SELECT DISTINCT i.resource_class AS rc FROM resource_providers s
    JOIN inventories i ON i.provider_id = s.id WHERE s.shares) c`;

/** Classes sharing providers hold; of those, the ones no provider but a sharing root holds. */
interface HeldClasses {
  shared: Set<string>;
  onlyShared: Set<string>;
}

const COUNT_MS = 10_000;
const COUNTS_MAX = 4096;
const HELD_CLASSES_MS = 1000;

/** The candidate finder over the placement database. */
export class AllocationCandidates {
  /** The counts broadMemberOf weighs (roots of a class, members of a member_of list), kept. */
  private readonly counts = new Map<string, { n: number; at: number }>();
  private held: { classes: HeldClasses; version: number; at: number } | undefined;

  /**
   * `version`: the placement writes made through this process (Placement.version); the classes
   * sharing providers hold (and which of them only sharing roots hold) are read again after any
   * of them, and at least every second (writes through another scheduler).
   */
  constructor(
    private readonly db: Queryable,
    private readonly version: () => number = () => 0,
  ) {}

  private async heldClasses(): Promise<HeldClasses> {
    const version = this.version();
    const now = Date.now();
    const known = this.held;
    if (known && known.version === version && now - known.at < HELD_CLASSES_MS) return known.classes;
    const rows = await this.db.query<{ rc: string; elsewhere: boolean }>(HELD_CLASSES_SQL, [], {
      name: "sched_held_classes",
    });
    const classes = {
      shared: new Set(rows.map((r) => r.rc)),
      onlyShared: new Set(rows.filter((r) => !r.elsewhere).map((r) => r.rc)),
    };
    this.held = { classes, version, at: now };
    return classes;
  }

  async list(input: CandidateQuery): Promise<CandidateResult> {
    const query = await this.resolveInTree(validateQuery(input));
    const limit = query.limit!;
    const held = await this.heldClasses();
    const walk = await this.broadMemberOf(query);
    const { sql, params } = candidatesQuery(query, limit, {
      sharingClasses: held.shared,
      walk,
      onlySharedClasses: held.onlyShared,
    });
    const { rootIds, providers, trees, sharing } = readTrees(
      await this.db.query<ProviderRow>(sql, params, GENERIC_PLAN),
    );
    if (!rootIds.length) return { candidates: [], summaries: [] };
    const candidates: Candidate[] = [];
    for (const rootId of rootIds) {
      const remaining = limit - candidates.length;
      if (remaining <= 0) break;
      candidates.push(
        ...assembleCandidates(
          rootId,
          { tree: trees.get(rootId) ?? [], sharing: sharing.get(rootId) ?? [] },
          providers,
          query,
          remaining,
        ),
      );
    }
    const used = new Set<string>();
    for (const c of candidates) {
      used.add(c.rootUuid);
      for (const a of c.allocations) used.add(a.providerUuid);
    }
    const summaries = [...providers.values()].filter((p) => used.has(p.uuid)).map(summarize);
    return { candidates, summaries };
  }

  /**
   * Whether an ordered search's member_of reaches at least a fifth of the roots holding the order
   * class: then the ordered walk over every root meets `limit` qualifying roots after about five
   * times as many, fewer than the members the member_of-driven search would list, free-rank and
   * sort (a routed network's segments together reach every host). Both searches give the same
   * roots; this only picks the cheaper. The class's root count and the member_of list's member
   * count are kept for COUNT_MS (hosts come and go rarely, and a stale count can only pick the
   * slower of two right answers), not read by a statement of their own per search.
   */
  private async broadMemberOf(query: CandidateQuery): Promise<boolean> {
    if (!query.order) return false;
    const anyOf = query.groups.find((g) => g.memberOf.length)?.memberOf[0];
    if (!anyOf) return false;
    const rc = query.order.resourceClass;
    const roots = await this.keptCount(
      `roots/${rc}`,
      "SELECT count(*) AS n FROM inventories WHERE resource_class = $1",
      [rc],
    );
    const members = await this.keptCount(
      `members/${[...anyOf].sort().join(",")}`,
      "SELECT count(*) AS n FROM provider_aggregates WHERE aggregate_uuid = ANY($1::uuid[])",
      [anyOf],
    );
    return members * 5 >= roots;
  }

  /** A count, read again once it is COUNT_MS old. */
  private async keptCount(key: string, sql: string, params: unknown[]): Promise<number> {
    const now = Date.now();
    const known = this.counts.get(key);
    if (known && known.at + COUNT_MS >= now) return known.n;
    const [row] = await this.db.query<{ n: string }>(sql, params);
    if (this.counts.size >= COUNTS_MAX) this.counts.clear();
    const n = Number(row?.n ?? 0);
    this.counts.set(key, { n, at: now });
    return n;
  }

  /** in_tree may name any provider of a tree; candidates compare roots. */
  private async resolveInTree(query: CandidateQuery): Promise<CandidateQuery> {
    const groups: RequestGroupSpec[] = [];
    for (const g of query.groups) {
      if (!g.inTree) {
        groups.push(g);
        continue;
      }
      const [row] = await this.db.query<{ root: string }>(
        "SELECT rp.uuid::text AS root FROM resource_providers p JOIN resource_providers rp ON rp.id = p.root_id WHERE p.uuid = $1",
        [g.inTree],
      );
      if (!row) throw invalidInput(`in_tree${g.suffix}: no resource provider with uuid ${g.inTree}`);
      groups.push({ ...g, inTree: row.root });
    }
    return { ...query, groups };
  }
}
