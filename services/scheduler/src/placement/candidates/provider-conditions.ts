// The SQL conditions one provider must meet to serve a request group (resources free within their
// units, traits, member_of, in_tree), and the index lookup of an aggregate's sharing providers:
// the pieces the candidate search and the NoValidHost explanation are built from.
import { assertResourceClass } from "../names.js";
import type { RequestGroupSpec } from "./request.js";

/** The parameters of a statement being built: each value added becomes the next `$n`. */
export class Params {
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
export function classLiteral(rc: string): string {
  assertResourceClass(rc);
  return `'${rc}'`;
}

/** SQL: provider `x` has `amount` of `rc` free within its unit constraints. */
export function hasInventory(p: Params, x: string, rc: string, amount: number): string {
  const n = p.add(amount, "bigint");
  return `EXISTS (SELECT 1 FROM inventories i WHERE i.provider_id = ${x}.id AND i.resource_class = ${classLiteral(rc)}
    AND i.free >= ${n} AND i.min_unit <= ${n} AND i.max_unit >= ${n} AND ${n} % i.step_size = 0)`;
}

export function traitConditions(p: Params, x: string, required: string[], forbidden: string[]): string[] {
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
 * the aggregate's members filtered per provider, a cost that grew with the aggregate.
 */
export function memberOfConditions(p: Params, x: string, memberOf: string[][]): string[] {
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
export function sharingMembers(aggs: string): string {
  return `SELECT a.provider_id FROM provider_aggregates a WHERE a.shares AND a.aggregate_uuid = ANY(${aggs})
    UNION SELECT c.id FROM resource_providers c WHERE c.shares AND c.id <> c.root_id
      AND EXISTS (SELECT 1 FROM provider_aggregates a WHERE a.provider_id = c.root_id AND a.aggregate_uuid = ANY(${aggs}))`;
}

export function inTreeCondition(p: Params, x: string, inTree: string | undefined): string[] {
  if (!inTree) return [];
  return [`${x}.root_id = (SELECT root_id FROM resource_providers WHERE uuid = ${p.add(inTree, "uuid")})`];
}

/** Conditions one provider must meet to serve a whole numbered group. */
export function groupProviderConditions(p: Params, g: RequestGroupSpec): (x: string) => string[] {
  return (x) => [
    ...Object.entries(g.resources).map(([rc, n]) => hasInventory(p, x, rc, n)),
    ...traitConditions(p, x, g.requiredTraits, g.forbiddenTraits),
    ...memberOfConditions(p, x, g.memberOf),
    ...inTreeCondition(p, x, g.inTree),
  ];
}
