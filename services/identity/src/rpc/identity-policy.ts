// Who may call each IdentityService RPC: every service that validates tokens (the public keys and
// the revocations its validator loads at start), and admins.
import { IdentityService } from "@stratus/contracts/identity/v1";
import { allow, servicePolicy } from "@stratus/runtime";

const VALIDATORS = ["api", "conductor", "scheduler", "network-adapter", "compute-agent"] as const;

export const identityPolicy = servicePolicy(IdentityService, {
  listSigningKeys: allow("admin", ...VALIDATORS),
  listRevocations: allow("admin", ...VALIDATORS),
});
