// Why a request found no candidates, for NoValidHost messages: its requirements checked one at a
// time, cheapest first, until one that nobody can meet.
import type { Queryable } from "@stratus/runtime";
import { GENERIC_PLAN } from "../statements.js";
import { groupProviderConditions, Params } from "./provider-conditions.js";
import { type CandidateQuery, type RequestGroupSpec, validateQuery } from "./request.js";
import { rootsQuery } from "./search-sql.js";

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
