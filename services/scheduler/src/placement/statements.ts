// Names for prepared statements (PostgreSQL): the hot statements are built from the request's
// shape, so each distinct SQL text gets a name derived from its hash. They run with generic plans:
// every part is reached by index from the request's roots / keys whatever the values, so a plan
// made once per connection serves every call, where re-planning took as long as running
// (bench/placement/explain.ts: 30-50% less per call at 1,000 and 10,000 providers). Bounded: past MAX_NAMES
// distinct texts (an unusual mix of request shapes) statements run unnamed, so a client cannot
// make every connection cache plans without limit.
import { createHash } from "node:crypto";
import type { QueryOptions } from "@stratus/runtime";

const MAX_NAMES = 64;
const names = new Map<string, string>();

export function prepared(sql: string): QueryOptions | undefined {
  let name = names.get(sql);
  if (!name) {
    if (names.size >= MAX_NAMES) return undefined;
    name = `sched_${createHash("sha1").update(sql).digest("hex").slice(0, 16)}`;
    names.set(sql, name);
  }
  return { name, genericPlan: true };
}
