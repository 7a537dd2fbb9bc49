export type { AuthenticatedIdentity, TokenValidator } from "./identity.js";
