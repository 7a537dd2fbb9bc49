export {
  PROJECT_ID_HEADER,
  ROLES_HEADER,
  USER_ID_HEADER,
  USER_NAME_HEADER,
} from "./acting-for.js";
export { type CallerCredential, useCallerCredential } from "./caller-credential.js";
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
export { KeystoneAdmin } from "./keystone-admin.js";
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
export { checkPolicies, methodsWithoutPolicy } from "./method-policy.js";
export {
  ACTS_FOR_USERS,
  SERVICE_PROJECT,
  SERVICE_ROLE,
  type ServicePrincipalName,
  serviceUserName,
} from "./principal.js";
export { type Revocation, RevocationList, revocationBuckets, revokes } from "./revocations.js";
export { AUTHORIZATION_HEADER, RpcAuthentication } from "./rpc-authentication.js";
export { loginAsUser } from "./service-auth.js";
export {
  ensureServiceUser,
  ensureServiceUsers,
  keptPassword,
  LOGIN_SERVICES,
  passwordFileOf,
  readPasswordFile,
} from "./service-users.js";
export {
  claimsFor,
  identityFromClaims,
  MalformedClaims,
  TOKEN_ALGORITHM,
  type TokenClaims,
} from "./token-claims.js";
