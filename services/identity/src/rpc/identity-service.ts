// IdentityService: what another service needs to validate tokens itself — the public signing keys
// and the revocations still relevant. Never a private key.
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { IdentityService } from "@stratus/contracts/identity/v1";
import { bindService, type ServiceBinding } from "@stratus/runtime";
import { revocationToEvent } from "@stratus/runtime/auth";
import type { RevocationLog } from "../tokens/revocation-log.js";
import type { SigningKeys } from "../tokens/signing-keys.js";

export function identityService(deps: {
  keys: SigningKeys;
  revocations: RevocationLog;
  tokenTtlSeconds: number;
}): ServiceBinding {
  return bindService(IdentityService, {
    async listSigningKeys() {
      const keys = await deps.keys.published();
      return {
        keys: keys.map((k) => ({
          kid: k.kid,
          alg: k.alg,
          kty: k.kty,
          crv: k.crv,
          x: k.x,
          y: k.y,
          createdAt: timestampFromDate(k.createdAt),
          ...(k.retiredAt ? { retiredAt: timestampFromDate(k.retiredAt) } : {}),
        })),
        tokenTtlSeconds: BigInt(deps.tokenTtlSeconds),
      };
    },
    async listRevocations() {
      const asOf = new Date();
      const revocations = await deps.revocations.relevant();
      return { revocations: revocations.map(revocationToEvent), asOf: timestampFromDate(asOf) };
    },
  });
}
