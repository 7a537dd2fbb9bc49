// Issuing and validating tokens. A token is a JWS over the claims of runtime/auth's format,
// signed with the current key; validation is the same LocalTokenValidator every service runs, fed
// from this process (keys and revocations straight from the database, its own revocations at once).
import type { AuthenticatedIdentity, LocalTokenValidator } from "@stratus/runtime/auth";
import { claimsFor } from "@stratus/runtime/auth";
import { newAuditId } from "../identifiers.js";
import type { SigningKeys } from "./signing-keys.js";

export type TokenRequest = Omit<AuthenticatedIdentity, "issuedAt" | "expiresAt" | "auditIds"> & {
  /** The token cannot outlive this (the token it was made from, an application credential's expiry). */
  notAfter?: Date | undefined;
  /** A token made from another carries that token's audit id after its own (Keystone's audit chain). */
  parentAuditId?: string | undefined;
};

export interface IssuedToken {
  token: string;
  identity: AuthenticatedIdentity;
}

export class TokenService {
  constructor(
    private readonly keys: SigningKeys,
    private readonly validator: LocalTokenValidator,
    private readonly ttlMs: number,
    private readonly now: () => number = Date.now,
  ) {}

  async issue(req: TokenRequest): Promise<IssuedToken> {
    const { notAfter, parentAuditId, ...carried } = req;
    const issuedAt = new Date(this.now());
    let expires = issuedAt.getTime() + this.ttlMs;
    if (notAfter) expires = Math.min(expires, notAfter.getTime());
    // Whole seconds: the JWT's exp is in seconds, and the body's expires_at must say the same.
    const expiresAt = new Date(Math.floor(expires / 1000) * 1000);
    const identity: AuthenticatedIdentity = {
      ...carried,
      issuedAt,
      expiresAt,
      auditIds: parentAuditId ? [newAuditId(), parentAuditId] : [newAuditId()],
    };
    return { token: await this.keys.sign(claimsFor(identity)), identity };
  }

  validate(token: string): Promise<AuthenticatedIdentity> {
    return this.validator.validate(token);
  }
}
