// A request for allocation candidates (Placement's GET /allocation_candidates parameters,
// reference §7.6): request groups, group policy, limit, and the scheduler's order and host names;
// validated as Placement validates them.
import { invalidInput } from "@stratus/runtime";
import { assertResourceClass, assertTrait, assertUuid } from "../names.js";

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
