export type { AuthenticatedIdentity, TokenValidator } from "./identity.js";
export {
  identityServiceSource,
  revocationFromEvent,
  revocationToEvent,
  watchRevocationEvents,
} from "./identity-source.js";
export {
  KeystoneTokenValidator,
  type KeystoneValidatorOptions,
  type KeystoneValidatorSeams,
} from "./keystone.js";
export {
  type KeystoneConfig,
  keystoneConfig,
  keystoneV3Url,
  keystoneValidatorOptions,
} from "./keystone-config.js";
export {
  LocalTokenValidator,
  type LocalTokenValidatorOptions,
  type PublicSigningKey,
  type RevocationListener,
  type TokenKeySource,
} from "./local-validator.js";
export { type Revocation, RevocationList, revocationBuckets, revokes } from "./revocations.js";
export {
  claimsFor,
  identityFromClaims,
  MalformedClaims,
  TOKEN_ALGORITHM,
  type TokenClaims,
} from "./token-claims.js";
