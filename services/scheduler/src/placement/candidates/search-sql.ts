// The candidate search's SQL (what may match: Placement's research_context): the roots of the
// provider trees that can satisfy every request group, ordered and limited, with sharing
// providers (MISC_SHARES_VIA_AGGREGATE) joining a tree through a common aggregate; and the one
// statement that returns those roots with their trees and sharing providers. Every part is
// reached by index from the request's keys or the roots returned, never by a scan of all
// providers, so that one generic plan per statement text serves every call (statements.ts).
import {
  classLiteral,
  groupProviderConditions,
  hasInventory,
  inTreeCondition,
  memberOfConditions,
  Params,
  sharingMembers,
  traitConditions,
} from "./provider-conditions.js";
import type { CandidateQuery, RequestGroupSpec } from "./request.js";

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
    // planner, misjudging the unit filters, then hashes every root holding the class.
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
  // the group itself, and that probe was planned as a hash over every provider holding the class,
  // every segment of the cloud for a search of one segment's hosts. "OR false" as above.
  if (!ownPossible) return `(${viaSharing} OR false)`;
  return `(${ownExists}
    OR ${viaSharing})`;
}

/**
 * SQL: the ids of the roots a group's first member_of list can reach, computed from the aggregate
 * index. A necessary condition only (every condition is still checked per root afterwards), but a
 * selective one: it lets a request bound to one segment start from that segment's hosts instead
 * of probing every root of the cloud.
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
  // hashes over every provider and every aggregate membership.
  return `SELECT (SELECT x.root_id FROM resource_providers x WHERE x.id = a.provider_id)
      FROM provider_aggregates a WHERE a.aggregate_uuid = ANY(${aggs})
    UNION SELECT (SELECT t.root_id FROM resource_providers t WHERE t.id = ta.provider_id)
      FROM unnest(ARRAY(
        SELECT unnest(ARRAY(SELECT sa.aggregate_uuid FROM provider_aggregates sa WHERE sa.provider_id = s.id))
        FROM resource_providers s WHERE s.id = ANY(ARRAY(${sharingMembers(aggs)}))
        EXCEPT SELECT unnest(${aggs}))) g(agg)
      CROSS JOIN LATERAL (SELECT ta.provider_id FROM provider_aggregates ta WHERE ta.aggregate_uuid = g.agg) ta`;
}

/**
 * What the finder knows of the cloud that shapes a search (AllocationCandidates): each part
 * leaves out work that cannot find anything, or picks the cheaper of two forms giving the same
 * roots; none changes the answer. Absent, the search assumes nothing.
 */
export interface SearchHints {
  /** The classes sharing providers hold. */
  sharingClasses?: Set<string>;
  /** The member_of reaches most of the cloud: an ordered search walks every root in order. */
  walk?: boolean;
  /** The classes only sharing roots hold. */
  onlySharedClasses?: Set<string>;
}

/**
 * The parts of the roots query: its CTEs and the SELECT of the ordered, limited root ids, with
 * the parameters they take.
 */
function rootsParts(
  query: CandidateQuery,
  limit: number,
  { sharingClasses, walk = false, onlySharedClasses }: SearchHints,
): { ctes: string[]; select: string; p: Params } {
  const p = new Params();
  // Without a sharing provider holding every class a condition needs, no sharing provider can
  // meet it: the sharing branch is left out (less to plan, and planning is most of the cost of a
  // search that reaches many roots).
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
    // by one in that order until `limit` qualify, instead of checking every root reached (a
    // segment's every host) and sorting the survivors. OFFSET 0 keeps the ordered subquery
    // whole, so the nested loop keeps its order and the LIMIT stops it early. (The free amount
    // by key per root: a join was planned as a hash of every row of the class.)
    const ordered = query.order
      ? `SELECT root_id, free, random() AS rnd FROM (SELECT d.root_id, (SELECT si.free FROM inventories si
            WHERE si.provider_id = d.root_id AND si.resource_class = ${classLiteral(query.order.resourceClass)}) AS free
          FROM d OFFSET 0) f WHERE free IS NOT NULL ORDER BY free ${dir}, rnd OFFSET 0`
      : "SELECT d.root_id FROM d ORDER BY d.root_id OFFSET 0";
    const select = `SELECT q.id FROM (${ordered}) dd
  CROSS JOIN LATERAL (SELECT r.id FROM resource_providers r WHERE r.id = dd.root_id AND ${where.join("\n AND ")}) q
  ORDER BY ${query.order ? "dd.free " + dir + ", dd.rnd" : "dd.root_id"} LIMIT ${Math.trunc(limit)}`;
    return { ctes, select, p };
  }
  if (query.order) {
    // No member_of: walk the class's inventories in order (index inventories_class_free: free,
    // then provider id) and check each root until `limit` qualify, instead of checking every
    // root of the cloud and sorting the survivors: the planner reads the index in order (no
    // fence: the join keeps its outer order) and the LIMIT stops the nested loop after a few
    // rows. The index's order read forwards (most free first) or backwards (least free first).
    const idOrder = dir === "DESC" ? "ASC" : "DESC";
    const select = `SELECT q.id FROM inventories si
  CROSS JOIN LATERAL (SELECT r.id FROM resource_providers r WHERE r.id = si.provider_id AND ${where.join("\n AND ")}) q
  WHERE si.resource_class = ${classLiteral(query.order.resourceClass)}
  ORDER BY si.free ${dir}, si.provider_id ${idOrder} LIMIT ${Math.trunc(limit)}`;
    return { ctes, select, p };
  }
  const select = `SELECT r.id FROM resource_providers r WHERE ${where.join("\n AND ")} ORDER BY r.id LIMIT ${Math.trunc(limit)}`;
  return { ctes, select, p };
}

/** Builds the query returning the ids of roots that can satisfy every group (ordered, limited). */
export function rootsQuery(
  query: CandidateQuery,
  limit: number,
  hints: SearchHints = {},
): { sql: string; params: unknown[] } {
  const { ctes, select, p } = rootsParts(query, limit, hints);
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
  hints: SearchHints = {},
): { sql: string; params: unknown[] } {
  const { ctes, select, p } = rootsParts(query, limit, hints);
  ctes.push(
    `roots AS MATERIALIZED (SELECT id, row_number() OVER () AS ord FROM (${select}) q)`,
    `members AS MATERIALIZED (SELECT m.id, m.root_id, m.shares FROM roots JOIN resource_providers m ON m.root_id = roots.id)`,
    // The sharing providers in an aggregate with a member, by the sharing memberships' index
    // (migration 003), never by listing every sharing provider's aggregates.
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
