// Request groups and group policy from their protobuf form.
import { GroupPolicy, type RequestGroup } from "@stratus/contracts/scheduler/v1/placement";
import type { GroupPolicy as DomainGroupPolicy, RequestGroupSpec } from "../placement/candidates/request.js";
import { memberOfIn, resourcesIn } from "./convert.js";

export function groupsIn(groups: RequestGroup[]): RequestGroupSpec[] {
  return groups.map((g) => ({
    suffix: g.suffix,
    resources: resourcesIn(g.resources),
    requiredTraits: [...g.requiredTraits],
    forbiddenTraits: [...g.forbiddenTraits],
    memberOf: memberOfIn(g.memberOf),
    inTree: g.inTree || undefined,
  }));
}

export function policyIn(policy: GroupPolicy): DomainGroupPolicy | undefined {
  if (policy === GroupPolicy.NONE) return "none";
  if (policy === GroupPolicy.ISOLATE) return "isolate";
  return undefined;
}
