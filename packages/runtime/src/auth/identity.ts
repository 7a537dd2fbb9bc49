// Who a caller is once its token has been validated: what every service decides access on,
// whichever issuer made the token (Stratus's own identity service, or an existing Keystone).

/** The identity a valid token carries. Scope is one of project, domain or system, or none. */
export interface AuthenticatedIdentity {
  userId: string;
  userName: string;
  userDomainId: string;
  /** Project scope: the project's id, name and domain; empty otherwise. */
  projectId: string;
  projectName: string;
  projectDomainId: string;
  /** Domain scope: the domain's id; empty otherwise. */
  domainId: string;
  /** System scope ("system": {"all": true}). */
  system: boolean;
  /** Role names on the scope, implied roles included (admin implies member implies reader). */
  roles: string[];
  issuedAt: Date;
  expiresAt: Date;
  /** The token's audit id, then its parent's for a token made from a token (as Keystone). */
  auditIds: string[];
  /** How the user authenticated: "password", "token", "application_credential". */
  methods: string[];
  /** Set when the token came from an application credential. */
  applicationCredentialId?: string;
}

/** Validates tokens for one service: locally against the issuer's keys, or by asking Keystone. */
export interface TokenValidator {
  /**
   * The identity a token carries. Throws StratusError "unauthorized" when the token is forged,
   * malformed, expired or revoked, and "unavailable" when the issuer cannot be asked.
   */
  validate(token: string): Promise<AuthenticatedIdentity>;
  close(): Promise<void>;
}
