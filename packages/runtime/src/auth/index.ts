export type { AuthenticatedIdentity, TokenValidator } from "./identity.js";
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
