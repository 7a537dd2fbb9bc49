// What the REST routes act through.
import type { Authenticator } from "../../auth/authenticator.js";
import type { PasswordHasher } from "../../auth/password-hasher.js";
import type { Directory } from "../../directory/directory.js";
import type { TokenService } from "../../tokens/token-service.js";

export interface RouteDeps {
  dir: Directory;
  authenticator: Authenticator;
  tokens: TokenService;
  hasher: PasswordHasher;
}
