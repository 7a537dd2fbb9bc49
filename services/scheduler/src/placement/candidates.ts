// Allocation candidates (Placement's GET /allocation_candidates, reference §7.6), computed in the
// database: one SQL query finds the provider trees (roots) that can satisfy every request group,
// with sharing providers (MISC_SHARES_VIA_AGGREGATE) joining a tree through a common aggregate;
// a second loads only those trees and their sharing providers, and `assembleCandidates` picks the
// concrete providers per group (group_policy, combined capacity) in memory.
import { invalidInput, type Queryable } from "@stratus/runtime";
import { unitViolation } from "./inventory.js";
import { assertResourceClass, assertTrait, assertUuid } from "./names.js";
import type { ProviderAllocation } from "./placement.js";
import { GENERIC_PLAN } from "./statements.js";

export interface RequestGroupSpec {
  /** "" is the unnumbered group: its resources may come from different providers of one tree. */
  suffix: string;
  resources: Record<string, number>;
  requiredTraits: string[];
  forbiddenTraits: string[];
  /** AND of any-of aggregate lists. */
  memberOf: string[][];
  inTree?: string;
}

export type GroupPolicy = "none" | "isolate";

export interface CandidateQuery {
  groups: RequestGroupSpec[];
  groupPolicy?: GroupPolicy;
  /** Maximum allocation requests returned (default and cap: MAX_CANDIDATES). */
  limit?: number;
  /** Order trees by their root's free amount of a class (the scheduler's pre-weighing). */
  order?: { resourceClass: string; direction: "most_free" | "least_free" };
  /** Only / never these root provider names (force_hosts / ignore_hosts). */
  rootNamesIn?: string[];
  rootNamesNotIn?: string[];
}

export interface Candidate {
  rootUuid: string;
  allocations: ProviderAllocation[];
  /** Group suffix → the provider(s) satisfying it ("" lists every provider of the unnumbered group). */
  mappings: Record<string, string[]>;
}

export interface ResourceUsage {
  capacity: number;
  used: number;
}

export interface ProviderSummary {
  uuid: string;
  name: string;
  rootUuid: string;
  parentUuid: string;
  shares: boolean;
  traits: string[];
  aggregates: string[];
  resources: Record<string, ResourceUsage>;
}

export interface CandidateResult {
  candidates: Candidate[];
  summaries: ProviderSummary[];
}

export const MAX_CANDIDATES = 1000;
const SUFFIX = /^[a-zA-Z0-9_-]{1,64}$/;

/** Validates a query as Placement does (400s), normalising uuids. */
export function validateQuery(query: CandidateQuery): CandidateQuery {
  const groups = query.groups.map((g) => ({
    ...g,
    memberOf: g.memberOf
      .filter((anyOf) => anyOf.length > 0)
      .map((anyOf) => anyOf.map((a) => assertUuid(a, "member_of aggregate"))),
    inTree: g.inTree ? assertUuid(g.inTree, "in_tree") : undefined,
  }));
  if (groups.filter((g) => g.suffix === "").length > 1)
    throw invalidInput("only one unnumbered request group");
  const suffixes = new Set<string>();
  for (const g of groups) {
    if (g.suffix !== "" && !SUFFIX.test(g.suffix)) {
      throw invalidInput(`invalid request group suffix ${JSON.stringify(g.suffix)}: [a-zA-Z0-9_-]{1,64}`);
    }
    if (suffixes.has(g.suffix))
      throw invalidInput(`request group suffix ${JSON.stringify(g.suffix)} given twice`);
    suffixes.add(g.suffix);
    for (const [rc, n] of Object.entries(g.resources)) {
      assertResourceClass(rc);
      if (!Number.isSafeInteger(n) || n < 1)
        throw invalidInput(`resources${g.suffix}: ${rc} must be a positive integer`);
    }
    for (const t of [...g.requiredTraits, ...g.forbiddenTraits]) assertTrait(t);
    if (g.suffix !== "" && Object.keys(g.resources).length === 0) {
      throw invalidInput(
        `All request groups must specify resources; group ${g.suffix} has traits or member_of but no resources`,
      );
    }
  }
  if (!groups.some((g) => Object.keys(g.resources).length > 0)) throw invalidInput("no resources requested");
  if (groups.filter((g) => g.suffix !== "").length > 1 && !query.groupPolicy) {
    throw invalidInput("The group_policy parameter is required when specifying more than one request group");
  }
  const limit = query.limit ?? MAX_CANDIDATES;
  if (!Number.isInteger(limit) || limit < 1) throw invalidInput("limit must be a positive integer");
  return { ...query, groups, limit: Math.min(limit, MAX_CANDIDATES) };
}

class Params {
  readonly values: unknown[] = [];
  add(value: unknown, type: string): string {
    this.values.push(value);
    return `$${this.values.length}::${type}`;
  }
  /**
   * An array literal with one parameter per element: its length is in the SQL text, so a generic
   * plan (prepared statement) estimates it as a custom plan would instead of assuming 10 elements,
   * and the server keeps the cheaper generic plan.
   */
  array(values: string[], type: string): string {
    return `ARRAY[${values.map((v) => this.add(v, type)).join(", ")}]`;
  }
}

/**
 * A resource class as an SQL literal. Classes are validated names ([A-Z0-9_]+), and a literal lets
 * a generic plan estimate the class's rows as a custom plan does (so the server keeps it).
 */
function classLiteral(rc: string): string {
  assertResourceClass(rc);
  return `'${rc}'`;
}

/** SQL: provider `x` has `amount` of `rc` free within its unit constraints. */
function hasInventory(p: Params, x: string, rc: string, amount: number): string {
  const n = p.add(amount, "bigint");
  return `EXISTS (SELECT 1 FROM inventories i WHERE i.provider_id = ${x}.id AND i.resource_class = ${classLiteral(rc)}
    AND i.free >= ${n} AND i.min_unit <= ${n} AND i.max_unit >= ${n} AND ${n} % i.step_size = 0)`;
}

function traitConditions(p: Params, x: string, required: string[], forbidden: string[]): string[] {
  const out: string[] = [];
  if (required.length) {
    out.push(
      `(SELECT count(*) FROM provider_traits t WHERE t.provider_id = ${x}.id AND t.trait = ANY(${p.add(required, "text[]")})) = ${required.length}`,
    );
  }
  if (forbidden.length) {
    out.push(
      `NOT EXISTS (SELECT 1 FROM provider_traits t WHERE t.provider_id = ${x}.id AND t.trait = ANY(${p.add(forbidden, "text[]")}))`,
    );
  }
  return out;
}

/**
 * member_of: the provider qualifies directly or via its root (Placement ≥1.21). Two probes of the
 * (provider_id, aggregate_uuid) key: `provider_id IN (x.id, x.root_id)` was planned as a scan of
 * the aggregate's members filtered per provider (1 ms per 100 sharing providers at 10,000 hosts).
 */
function memberOfConditions(p: Params, x: string, memberOf: string[][]): string[] {
  return memberOf.map((anyOf) => {
    const aggs = p.array(anyOf, "uuid");
    return `(EXISTS (SELECT 1 FROM provider_aggregates a WHERE a.provider_id = ${x}.id AND a.aggregate_uuid = ANY(${aggs}))
      OR EXISTS (SELECT 1 FROM provider_aggregates a WHERE a.provider_id = ${x}.root_id AND a.aggregate_uuid = ANY(${aggs})))`;
  });
}

/**
 * SQL: the ids of the sharing providers in one of the aggregates `aggs` (an array expression),
 * directly or via their root, by index (migration 003): the sharing memberships of an aggregate,
 * and the few sharing providers that are not roots. Never a walk over every sharing provider.
 */
function sharingMembers(aggs: string): string {
  return `SELECT a.provider_id FROM provider_aggregates a WHERE a.shares AND a.aggregate_uuid = ANY(${aggs})
    UNION SELECT c.id FROM resource_providers c WHERE c.shares AND c.id <> c.root_id
      AND EXISTS (SELECT 1 FROM provider_aggregates a WHERE a.provider_id = c.root_id AND a.aggregate_uuid = ANY(${aggs}))`;
}

function inTreeCondition(p: Params, x: string, inTree: string | undefined): string[] {
  if (!inTree) return [];
  return [`${x}.root_id = (SELECT root_id FROM resource_providers WHERE uuid = ${p.add(inTree, "uuid")})`];
}

/**
 * SQL: some provider satisfying `conds(x)` serves the tree rooted at r: a member of the tree, or a
 * sharing provider in an aggregate with a member of the tree. The aggregates of the sharing
 * providers that qualify do not depend on r: they are computed once, as a materialized CTE added
 * to `ctes`, instead of once per root.
 */
function servesTree(
  ctes: string[],
  conds: (x: string) => string[],
  sharingPossible: boolean,
  sharingDriver?: string,
  ownPossible = true,
): string {
  // Built only when used: each condition adds its parameters.
  const own = ownPossible ? conds("x") : [];
  const ownExists = `EXISTS (SELECT 1 FROM resource_providers x WHERE x.root_id = r.id${own.map((c) => ` AND ${c}`).join("")})`;
  if (!sharingPossible) {
    // "OR false" keeps this a per-root probe: a bare EXISTS is pulled up into a semi-join, and the
    // planner, misjudging the unit filters, then hashes every root holding the class (10,000).
    return ownPossible ? `(${ownExists} OR false)` : "false";
  }
  const shared = conds("s");
  const name = `sharing${ctes.length}`;
  // With a member_of, the sharing providers of its aggregates are listed by index first.
  const driven = sharingDriver ? ` AND s.id = ANY(ARRAY(${sharingDriver}))` : "";
  ctes.push(`${name} AS MATERIALIZED (SELECT DISTINCT sa.aggregate_uuid FROM resource_providers s
    JOIN provider_aggregates sa ON sa.provider_id = s.id WHERE s.shares${driven}${shared.map((c) => ` AND ${c}`).join("")})`);
  const viaSharing = `EXISTS (SELECT 1 FROM resource_providers t JOIN provider_aggregates ta ON ta.provider_id = t.id
      WHERE t.root_id = r.id AND ta.aggregate_uuid IN (SELECT aggregate_uuid FROM ${name}))`;
  // A class only sharing roots hold (a segment's IPV4_ADDRESS): no provider of the tree can meet
  // the group itself, and that probe was planned as a hash over every provider holding the class
  // (a third of a segment's search at 100 segments). "OR false" as above.
  if (!ownPossible) return `(${viaSharing} OR false)`;
  return `(${ownExists}
    OR ${viaSharing})`;
}

/** Conditions one provider must meet to serve a whole numbered group. */
function groupProviderConditions(p: Params, g: RequestGroupSpec): (x: string) => string[] {
  return (x) => [
    ...Object.entries(g.resources).map(([rc, n]) => hasInventory(p, x, rc, n)),
    ...traitConditions(p, x, g.requiredTraits, g.forbiddenTraits),
    ...memberOfConditions(p, x, g.memberOf),
    ...inTreeCondition(p, x, g.inTree),
  ];
}

/**
 * SQL: the ids of the roots a group's first member_of list can reach, computed from the aggregate
 * index. A necessary condition only (every condition is still checked per root afterwards), but a
 * selective one: it lets a request bound to one segment start from that segment's hosts instead
 * of probing every root of the cloud (bench/placement: 10,000 roots took seconds).
 */
function memberOfRoots(p: Params, g: RequestGroupSpec): string | undefined {
  const anyOf = g.memberOf[0];
  if (!anyOf) return undefined;
  const aggs = p.array(anyOf, "uuid");
  // The unnumbered group's member_of applies to the root itself.
  if (g.suffix === "")
    return `SELECT a.provider_id FROM provider_aggregates a WHERE a.aggregate_uuid = ANY(${aggs})`;
  // A provider of the group is in the aggregate directly or via its root (then the root itself is
  // in it): it serves its own tree, or, when it is a sharing provider, the trees in any aggregate
  // it belongs to.
  // Scalar subqueries and `= ANY(ARRAY(...))` keep this on the indexes: joins were planned as
  // hashes over every provider and every aggregate membership (10,000 rows each).
  return `SELECT (SELECT x.root_id FROM resource_providers x WHERE x.id = a.provider_id)
      FROM provider_aggregates a WHERE a.aggregate_uuid = ANY(${aggs})
    UNION SELECT (SELECT t.root_id FROM resource_providers t WHERE t.id = ta.provider_id)
      FROM unnest(ARRAY(
        SELECT unnest(ARRAY(SELECT sa.aggregate_uuid FROM provider_aggregates sa WHERE sa.provider_id = s.id))
        FROM resource_providers s WHERE s.id = ANY(ARRAY(${sharingMembers(aggs)}))
        EXCEPT SELECT unnest(${aggs}))) g(agg)
      CROSS JOIN LATERAL (SELECT ta.provider_id FROM provider_aggregates ta WHERE ta.aggregate_uuid = g.agg) ta`;
}

/** The parts of the roots query: its CTEs and the SELECT of the ordered, limited root ids. */
function rootsParts(
  p: Params,
  query: CandidateQuery,
  limit: number,
  sharingClasses?: Set<string>,
  walk = false,
  onlySharedClasses?: Set<string>,
): { ctes: string[]; select: string } {
  // Without a sharing provider holding every class a condition needs, no sharing provider can
  // meet it: the sharing branch is left out (less to plan; planning dominated at 10,000 roots).
  const sharingCan = (classes: string[]) => !sharingClasses || classes.every((rc) => sharingClasses.has(rc));
  // With a class that only sharing roots hold, no provider of the tree can meet it.
  const ownCan = (classes: string[]) =>
    !onlySharedClasses || !classes.some((rc) => onlySharedClasses.has(rc));
  let driving: string | undefined;
  // `walk`: the member_of reaches most of the cloud, so walking every root in order and checking
  // it (member_of included: every condition is in `where`) stops sooner than listing the members.
  for (const g of walk && query.order ? [] : query.groups) {
    driving = memberOfRoots(p, g);
    if (driving) break;
  }
  const where = ["r.id = r.root_id", "NOT r.shares"];
  const ctes: string[] = [];
  if (driving) ctes.push(`d AS MATERIALIZED (SELECT DISTINCT root_id FROM (${driving}) s(root_id))`);
  for (const g of query.groups) {
    if (g.suffix === "") {
      for (const [rc, n] of Object.entries(g.resources))
        where.push(
          servesTree(ctes, (x) => [hasInventory(p, x, rc, n)], sharingCan([rc]), undefined, ownCan([rc])),
        );
      where.push(...traitConditions(p, "r", g.requiredTraits, g.forbiddenTraits));
      where.push(...memberOfConditions(p, "r", g.memberOf));
      where.push(...inTreeCondition(p, "r", g.inTree));
    } else {
      const anyOf = g.memberOf[0];
      where.push(
        servesTree(
          ctes,
          groupProviderConditions(p, g),
          sharingCan(Object.keys(g.resources)),
          anyOf ? sharingMembers(p.array(anyOf, "uuid")) : undefined,
          ownCan(Object.keys(g.resources)),
        ),
      );
    }
  }
  if (query.rootNamesIn?.length) where.push(`r.name = ANY(${p.add(query.rootNamesIn, "text[]")})`);
  if (query.rootNamesNotIn?.length)
    where.push(`NOT (r.name = ANY(${p.add(query.rootNamesNotIn, "text[]")}))`);
  const dir = query.order?.direction === "least_free" ? "ASC" : "DESC";
  if (driving) {
    // The roots the member_of reaches, put in order first (one key per root), then checked one
    // by one in that order until `limit` qualify: before, every root reached (500 per segment
    // at 10,000 hosts / 20 segments) was checked and the survivors sorted. OFFSET 0 keeps the
    // ordered subquery whole, so the nested loop keeps its order and the LIMIT stops it early.
    // (The free amount by key per root: a join was planned as a hash of the class's 10,000 rows.)
    const ordered = query.order
      ? `SELECT root_id, free, random() AS rnd FROM (SELECT d.root_id, (SELECT si.free FROM inventories si
            WHERE si.provider_id = d.root_id AND si.resource_class = ${classLiteral(query.order.resourceClass)}) AS free
          FROM d OFFSET 0) f WHERE free IS NOT NULL ORDER BY free ${dir}, rnd OFFSET 0`
      : "SELECT d.root_id FROM d ORDER BY d.root_id OFFSET 0";
    const select = `SELECT q.id FROM (${ordered}) dd
  CROSS JOIN LATERAL (SELECT r.id FROM resource_providers r WHERE r.id = dd.root_id AND ${where.join("\n AND ")}) q
  ORDER BY ${query.order ? "dd.free " + dir + ", dd.rnd" : "dd.root_id"} LIMIT ${Math.trunc(limit)}`;
    return { ctes, select };
  }
  if (query.order) {
    // No member_of: walk the class's inventories in order (index inventories_class_free: free,
    // then provider id) and check each root until `limit` qualify. Checking every root and
    // sorting the survivors cost 8 ms and 21,000 buffer hits per call at 1,000 hosts. OFFSET 0
    // keeps the ordered walk whole, so the nested loop keeps its order and the LIMIT stops it.
    // The index's order read forwards (most free first) or backwards (least free first).
    const idOrder = dir === "DESC" ? "ASC" : "DESC";
    const select = `SELECT q.id FROM inventories si
  CROSS JOIN LATERAL (SELECT r.id FROM resource_providers r WHERE r.id = si.provider_id AND ${where.join("\n AND ")}) q
  WHERE si.resource_class = ${classLiteral(query.order.resourceClass)}
  ORDER BY si.free ${dir}, si.provider_id ${idOrder} LIMIT ${Math.trunc(limit)}`;
    return { ctes, select };
  }
  const select = `SELECT r.id FROM resource_providers r WHERE ${where.join("\n AND ")} ORDER BY r.id LIMIT ${Math.trunc(limit)}`;
  return { ctes, select };
}

/** Builds the query returning the ids of roots that can satisfy every group (ordered, limited). */
export function rootsQuery(
  query: CandidateQuery,
  limit: number,
  sharingClasses?: Set<string>,
  walk = false,
  onlySharedClasses?: Set<string>,
): { sql: string; params: unknown[] } {
  const p = new Params();
  const { ctes, select } = rootsParts(p, query, limit, sharingClasses, walk, onlySharedClasses);
  return { sql: `${ctes.length ? `WITH ${ctes.join(",\n")}\n` : ""}${select}`, params: p.values };
}

/**
 * One statement for the roots query and the trees it returns: every provider of those trees and
 * every sharing provider in an aggregate with one of them, each with its inventories, traits and
 * aggregates. Root rows carry their rank (`ord`) and the sharing providers linked to their tree.
 * Everything is reached by index from the (few) roots returned, never by scanning all providers.
 */
export function candidatesQuery(
  query: CandidateQuery,
  limit: number,
  sharingClasses?: Set<string>,
  walk = false,
  onlySharedClasses?: Set<string>,
): { sql: string; params: unknown[] } {
  const p = new Params();
  const { ctes, select } = rootsParts(p, query, limit, sharingClasses, walk, onlySharedClasses);
  ctes.push(
    `roots AS MATERIALIZED (SELECT id, row_number() OVER () AS ord FROM (${select}) q)`,
    `members AS MATERIALIZED (SELECT m.id, m.root_id, m.shares FROM roots JOIN resource_providers m ON m.root_id = roots.id)`,
    // The sharing providers in an aggregate with a member, by the sharing memberships' index
    // (migration 003): before, every sharing provider's aggregates were listed first.
    `links AS MATERIALIZED (SELECT DISTINCT m.root_id, sa.provider_id AS sharing_id FROM members m
       JOIN provider_aggregates ta ON ta.provider_id = m.id
       JOIN provider_aggregates sa ON sa.aggregate_uuid = ta.aggregate_uuid AND sa.shares
       WHERE NOT m.shares AND sa.provider_id <> m.id)`,
  );
  const sql = `WITH ${ctes.join(",\n")}
SELECT p.id, p.uuid::text AS uuid, p.name, p.root_id, p.shares,
  (SELECT rp.uuid::text FROM resource_providers rp WHERE rp.id = p.root_id) AS root_uuid,
  (SELECT pp.uuid::text FROM resource_providers pp WHERE pp.id = p.parent_id) AS parent_uuid,
  (SELECT coalesce(json_agg(json_build_object('rc', i.resource_class, 'min_unit', i.min_unit, 'max_unit', i.max_unit,
     'step_size', i.step_size, 'used', i.used, 'capacity', i.capacity)), '[]'::json) FROM inventories i WHERE i.provider_id = p.id) AS inv,
  (SELECT array_agg(t.trait ORDER BY t.trait) FROM provider_traits t WHERE t.provider_id = p.id) AS traits,
  (SELECT array_agg(a.aggregate_uuid::text) FROM provider_aggregates a WHERE a.provider_id = p.id) AS aggs,
  roots.ord,
  (SELECT array_agg(l.sharing_id) FROM links l WHERE l.root_id = roots.id) AS sharing
FROM resource_providers p LEFT JOIN roots ON roots.id = p.id
WHERE p.id IN (SELECT id FROM members UNION SELECT sharing_id FROM links)
ORDER BY p.id`;
  return { sql, params: p.values };
}

interface ProviderRow {
  id: number;
  uuid: string;
  name: string;
  root_id: number;
  root_uuid: string;
  parent_uuid: string | null;
  shares: boolean;
  inv: {
    rc: string;
    min_unit: number;
    max_unit: number;
    step_size: number;
    used: number;
    capacity: number;
  }[];
  traits: string[] | null;
  aggs: string[] | null;
  /** Rank of a returned root (null for other providers); bigint comes back as a string. */
  ord: string | number | null;
  sharing: number[] | null;
  [k: string]: unknown;
}

export interface InventoryView {
  capacity: number;
  used: number;
  minUnit: number;
  maxUnit: number;
  stepSize: number;
}

/** A provider with everything assembly needs. */
export interface ProviderView {
  id: number;
  uuid: string;
  name: string;
  rootId: number;
  rootUuid: string;
  parentUuid: string;
  shares: boolean;
  traits: Set<string>;
  aggregates: Set<string>;
  inventories: Map<string, InventoryView>;
}

export interface Trees {
  /** The roots returned, best first. */
  rootIds: number[];
  providers: Map<number, ProviderView>;
  trees: Map<number, number[]>;
  sharing: Map<number, number[]>;
}

/** Reads the rows of `candidatesQuery` into providers, the members of each tree and its sharers. */
export function readTrees(rows: ProviderRow[]): Trees {
  const providers = new Map<number, ProviderView>();
  const ranked: [number, number][] = [];
  const sharing = new Map<number, number[]>();
  for (const r of rows) {
    const inv = typeof r.inv === "string" ? (JSON.parse(r.inv) as ProviderRow["inv"]) : r.inv;
    providers.set(r.id, {
      id: r.id,
      uuid: r.uuid,
      name: r.name,
      rootId: r.root_id,
      rootUuid: r.root_uuid,
      parentUuid: r.parent_uuid ?? "",
      shares: r.shares,
      traits: new Set(r.traits ?? []),
      aggregates: new Set(r.aggs ?? []),
      inventories: new Map(
        inv.map((i) => [
          i.rc,
          {
            capacity: Number(i.capacity),
            used: Number(i.used),
            minUnit: Number(i.min_unit),
            maxUnit: Number(i.max_unit),
            stepSize: Number(i.step_size),
          },
        ]),
      ),
    });
    if (r.ord !== null && r.ord !== undefined) {
      ranked.push([Number(r.ord), r.id]);
      sharing.set(r.id, (r.sharing ?? []).map(Number));
    }
  }
  const rootIds = ranked.sort((a, b) => a[0] - b[0]).map(([, id]) => id);
  const roots = new Set(rootIds);
  const trees = new Map<number, number[]>(rootIds.map((id) => [id, []]));
  // Rows come ordered by id: each tree's members in id order, as before.
  for (const p of providers.values()) if (roots.has(p.rootId)) trees.get(p.rootId)!.push(p.id);
  return { rootIds, providers, trees, sharing };
}

export function fits(inv: InventoryView | undefined, amount: number): boolean {
  return inv !== undefined && unitViolation(inv, amount) === undefined && inv.used + amount <= inv.capacity;
}

function servesGroup(x: ProviderView, g: RequestGroupSpec, providers: Map<number, ProviderView>): boolean {
  for (const [rc, n] of Object.entries(g.resources)) if (!fits(x.inventories.get(rc), n)) return false;
  for (const t of g.requiredTraits) if (!x.traits.has(t)) return false;
  for (const t of g.forbiddenTraits) if (x.traits.has(t)) return false;
  const root = providers.get(x.rootId);
  for (const anyOf of g.memberOf) {
    if (!anyOf.some((a) => x.aggregates.has(a) || root?.aggregates.has(a))) return false;
  }
  // list() has already replaced in_tree by the uuid of that tree's root.
  if (g.inTree && x.rootUuid !== g.inTree) return false;
  return true;
}

interface Choice {
  suffix: string;
  /** resource class → provider serving it. */
  parts: { rc: string; amount: number; provider: ProviderView }[];
}

function cartesian<T>(lists: T[][], cap: number): T[][] {
  let out: T[][] = [[]];
  for (const list of lists) {
    const next: T[][] = [];
    for (const prefix of out) {
      for (const item of list) {
        next.push([...prefix, item]);
        if (next.length >= cap) break;
      }
      if (next.length >= cap) break;
    }
    out = next;
  }
  return out;
}

/**
 * Every way (up to `cap`) to satisfy the groups from one tree plus its sharing providers: the
 * unnumbered group class by class, each numbered group from a single provider; isolate keeps the
 * numbered groups on different providers; amounts landing on one provider must fit together.
 */
export function assembleCandidates(
  rootId: number,
  candidatesOf: { tree: number[]; sharing: number[] },
  providers: Map<number, ProviderView>,
  query: CandidateQuery,
  cap: number,
): Candidate[] {
  const pool = [...candidatesOf.tree, ...candidatesOf.sharing]
    .map((id) => providers.get(id))
    .filter((p): p is ProviderView => p !== undefined);
  const root = providers.get(rootId)!;
  const perGroup: Choice[][] = [];
  for (const g of query.groups) {
    if (g.suffix === "") {
      const perClass = Object.entries(g.resources).map(([rc, amount]) =>
        pool.filter((x) => fits(x.inventories.get(rc), amount)).map((provider) => ({ rc, amount, provider })),
      );
      if (perClass.some((l) => l.length === 0)) return [];
      // Prefer the root itself first: a compute node serves its own VCPU/MEMORY_MB/DISK_GB.
      for (const l of perClass)
        l.sort((a, b) => Number(b.provider.id === root.id) - Number(a.provider.id === root.id));
      perGroup.push(cartesian(perClass, cap).map((parts) => ({ suffix: "", parts })));
    } else {
      const options = pool.filter((x) => servesGroup(x, g, providers));
      if (!options.length) return [];
      perGroup.push(
        options.map((provider) => ({
          suffix: g.suffix,
          parts: Object.entries(g.resources).map(([rc, amount]) => ({ rc, amount, provider })),
        })),
      );
    }
  }
  const out: Candidate[] = [];
  const seen = new Set<string>();
  for (const combo of cartesian(perGroup, cap * 4)) {
    if (query.groupPolicy === "isolate") {
      const numbered = combo.filter((c) => c.suffix !== "").map((c) => c.parts[0]!.provider.id);
      if (new Set(numbered).size !== numbered.length) continue;
    }
    const sums = new Map<string, { provider: ProviderView; rc: string; amount: number }>();
    for (const choice of combo) {
      for (const part of choice.parts) {
        const key = `${part.provider.id}/${part.rc}`;
        const s = sums.get(key);
        if (s) s.amount += part.amount;
        else sums.set(key, { provider: part.provider, rc: part.rc, amount: part.amount });
      }
    }
    let ok = true;
    for (const s of sums.values()) {
      const inv = s.provider.inventories.get(s.rc)!;
      if (inv.used + s.amount > inv.capacity) ok = false;
    }
    if (!ok) continue;
    const allocations = new Map<string, ProviderAllocation>();
    for (const s of sums.values()) {
      let a = allocations.get(s.provider.uuid);
      if (!a) {
        a = { providerUuid: s.provider.uuid, resources: {} };
        allocations.set(s.provider.uuid, a);
      }
      a.resources[s.rc] = s.amount;
    }
    const sorted = [...allocations.values()].sort((a, b) => (a.providerUuid < b.providerUuid ? -1 : 1));
    const key = JSON.stringify(sorted);
    if (seen.has(key)) continue;
    seen.add(key);
    const mappings: Record<string, string[]> = {};
    for (const choice of combo) {
      mappings[choice.suffix] = [...new Set(choice.parts.map((p) => p.provider.uuid))];
    }
    out.push({ rootUuid: root.uuid, allocations: sorted, mappings });
    if (out.length >= cap) break;
  }
  return out;
}

export function summarize(p: ProviderView): ProviderSummary {
  return {
    uuid: p.uuid,
    name: p.name,
    rootUuid: p.rootUuid,
    parentUuid: p.parentUuid,
    shares: p.shares,
    traits: [...p.traits].sort(),
    aggregates: [...p.aggregates].sort(),
    resources: Object.fromEntries(
      [...p.inventories.entries()].map(([rc, inv]) => [rc, { capacity: inv.capacity, used: inv.used }]),
    ),
  };
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
    const { sql, params } = candidatesQuery(query, limit, held.shared, walk, held.onlyShared);
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
   * sort (a routed network's two segments in the boot bench: every host, 20 ms per call). Both
   * searches give the same roots; this only picks the cheaper. The class's root count and the
   * member_of list's member count are kept for COUNT_MS (hosts come and go rarely, and a stale
   * count can only pick the slower of two right answers; the member count was one statement a
   * search, 0.5 ms on PGlite).
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

/** Some provider of a tree (root not sharing) has `$2` of class `$1` free within its units. */
const OWN_FREE_SQL = `SELECT 1 FROM inventories i JOIN resource_providers x ON x.id = i.provider_id
  JOIN resource_providers r ON r.id = x.root_id
  WHERE i.resource_class = $1::text AND i.free >= $2::bigint AND i.min_unit <= $2::bigint
    AND i.max_unit >= $2::bigint AND $2::bigint % i.step_size = 0 AND NOT x.shares AND NOT r.shares LIMIT 1`;

/** Names the first requirement nobody can meet, for NoValidHost messages. */
export async function explainNoCandidates(
  db: Queryable,
  input: CandidateQuery,
  options: {
    /**
     * A search of this very query (whatever its order and limit) has just found no tree: the
     * check below that would run it again, for a query with one numbered group, is not run.
     */
    searchFoundNone?: boolean;
  } = {},
): Promise<string> {
  const query = validateQuery(input);
  const anyRoot = async (q: CandidateQuery) => {
    const { sql, params } = rootsQuery({ ...q, order: undefined }, 1);
    return (await db.query(sql, params, GENERIC_PLAN)).length > 0;
  };
  const names = { rootNamesIn: query.rootNamesIn, rootNamesNotIn: query.rootNamesNotIn };
  if (query.rootNamesIn?.length) {
    const found = await db.query<{ name: string }>(
      "SELECT name FROM resource_providers WHERE name = ANY($1::text[]) AND id = root_id",
      [query.rootNamesIn],
    );
    const usable = query.rootNamesIn.filter(
      (n) => found.some((f) => f.name === n) && !query.rootNamesNotIn?.includes(n),
    );
    if (!usable.length) return `forced host(s) ${query.rootNamesIn.join(", ")} unknown or excluded`;
  }
  const unnumbered = query.groups.find((g) => g.suffix === "");
  if (unnumbered) {
    for (const [rc, n] of Object.entries(unnumbered.resources)) {
      const alone: RequestGroupSpec = {
        suffix: "",
        resources: { [rc]: n },
        requiredTraits: [],
        forbiddenTraits: [],
        memberOf: [],
      };
      // A provider of some tree (not a sharing one) with the amount free settles it by index;
      // the roots query (which also counts sharing providers) runs only when none has it.
      const own =
        !query.rootNamesIn?.length &&
        !query.rootNamesNotIn?.length &&
        (await db.query(OWN_FREE_SQL, [rc, n], { name: "sched_own_free" })).length > 0;
      if (!own && !(await anyRoot({ groups: [alone], ...names })))
        return `${rc} exhausted: no host has ${n} ${rc} free`;
    }
    const bare = { ...unnumbered, memberOf: [], requiredTraits: [], forbiddenTraits: [] };
    if (unnumbered.requiredTraits.length || unnumbered.forbiddenTraits.length) {
      const traits = {
        ...bare,
        requiredTraits: unnumbered.requiredTraits,
        forbiddenTraits: unnumbered.forbiddenTraits,
      };
      if (!(await anyRoot({ groups: [traits], ...names }))) {
        return `no host with the resources has traits required=[${unnumbered.requiredTraits.join(",")}] forbidden=[${unnumbered.forbiddenTraits.join(",")}]`;
      }
    }
    if (
      unnumbered.memberOf.length &&
      !(await anyRoot({ groups: [{ ...bare, memberOf: unnumbered.memberOf }], ...names }))
    ) {
      return `no host with the resources is in the required aggregates ${unnumbered.memberOf.map((a) => `[${a.join(",")}]`).join(" and ")}`;
    }
  }
  for (const g of query.groups.filter((x) => x.suffix !== "")) {
    const p = new Params();
    const conds = groupProviderConditions(p, g)("x");
    const providerSql = `SELECT 1 FROM resource_providers x WHERE ${conds.join(" AND ")} LIMIT 1`;
    const rows = await db.query(providerSql, p.values, GENERIC_PLAN);
    const what = Object.entries(g.resources)
      .map(([rc, n]) => `${n} ${rc}`)
      .join(", ");
    const where = g.memberOf.length
      ? ` on segments/aggregates ${g.memberOf.map((a) => a.join(", ")).join(" and ")}`
      : "";
    if (!rows.length) {
      return `${Object.keys(g.resources).join(", ")} exhausted${where} (group ${g.suffix} needs ${what} from one provider)`;
    }
    const groups = unnumbered ? [unnumbered, g] : [g];
    // With one numbered group and no isolation this is the request's own search, known empty.
    const isTheSearch =
      options.searchFoundNone === true &&
      query.groupPolicy !== "isolate" &&
      query.groups.length === groups.length &&
      groups.every((x, i) => query.groups[i] === x);
    if (isTheSearch || !(await anyRoot({ groups, groupPolicy: "none", ...names }))) {
      return `no host with the flavor's resources is in an aggregate with a provider of ${what}${where} (group ${g.suffix})`;
    }
  }
  return "no single host satisfies all the constraints together";
}
