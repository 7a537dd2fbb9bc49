// The scheduler's hot statements are built from the request's shape; they run prepared (the
// runtime names each distinct text once per connection) with generic plans: every part is reached
// by index from the request's roots / keys whatever the values, so a plan made once per
// connection serves every call, where re-planning took as long as running
// (bench/placement/explain.ts: 30-50% less per call at 1,000 and 10,000 providers).
import type { QueryOptions } from "@stratus/runtime";

export const GENERIC_PLAN: QueryOptions = { genericPlan: true };
