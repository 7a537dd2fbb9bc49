// The filters users and projects are listed by (name, domain_id, enabled), the domain limited to
// what the caller may read and the listing enforced.
import type { AuthenticatedIdentity } from "@stratus/runtime/auth";
import { type Action, enforce, listingDomain } from "../../auth/policy.js";
import { queryBool, queryText } from "../input.js";
import type { KeystoneRequest } from "../keystone-server.js";

export function domainListing(req: KeystoneRequest, caller: AuthenticatedIdentity, action: Action) {
  const domainId = listingDomain(caller, queryText(req.query, "domain_id"));
  enforce(action, caller, { domainId });
  return { name: queryText(req.query, "name"), domainId, enabled: queryBool(req.query, "enabled") };
}
