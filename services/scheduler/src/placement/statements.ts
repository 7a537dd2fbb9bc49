// The scheduler's hot statements are built from the request's shape; they run prepared (the
// runtime names each distinct text once per connection) with generic plans: every part is reached
// by index from the request's roots / keys whatever the values, so a plan made once per
// connection serves every call, where planning each call cost as much as running it
// (docs/performance.md, "Generic plans").
import type { QueryOptions } from "@stratus/runtime";

export const GENERIC_PLAN: QueryOptions = { genericPlan: true };
