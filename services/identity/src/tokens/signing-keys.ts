// The token signing keys, kept in this service's database: every replica signs with the same
// keys and sees a rotation at once, and the keys are backed up with the rest of the identity data
// (Keystone's key repositories must instead be copied to every node by hand). The private part
// never leaves this service: the IdentityService RPC hands out public keys only.
// Rotation: a new key takes over signing; the retired key is still published (and verifies) until
// the last token it signed has expired, then it is deleted.

import type { Database } from "@stratus/runtime";
import { type PublicSigningKey, TOKEN_ALGORITHM, type TokenClaims } from "@stratus/runtime/auth";
import { exportJWK, exportPKCS8, generateKeyPair, importPKCS8, SignJWT } from "jose";
import { cols } from "../columns.js";
import { newId } from "../identifiers.js";

interface KeyRow extends Record<string, unknown> {
  kid: string;
  alg: string;
  public_jwk: { kty: string; crv: string; x: string; y: string };
  private_pkcs8: string;
  created_at: Date;
  retired_at: Date | null;
}

export interface PublishedKey extends PublicSigningKey {
  createdAt: Date;
  retiredAt: Date | undefined;
}

type SignKey = Awaited<ReturnType<typeof importPKCS8>>;

/** Serialises key creation between replicas sharing the database. */
const ROTATION_LOCK = 0x1d3e7;

export class SigningKeys {
  private signer: { kid: string; key: SignKey; loadedAt: number } | undefined;

  constructor(
    private readonly db: Database,
    private readonly options: {
      tokenTtlMs: number;
      /** A key older than this is replaced (0: never). */
      rotationMs: number;
      /** How often a replica looks for a key made by another. */
      reloadMs?: number;
      now?: () => number;
    },
  ) {}

  private now(): number {
    return (this.options.now ?? Date.now)();
  }

  /** Makes sure a signing key exists (and rotates an old one); call at start and periodically. */
  async ensure(): Promise<void> {
    const newest = await this.newestActive();
    const tooOld =
      newest &&
      this.options.rotationMs > 0 &&
      this.now() - newest.created_at.getTime() >= this.options.rotationMs;
    if (!newest || tooOld) await this.rotate(newest?.kid);
    await this.pruneExpired();
    this.signer = undefined;
  }

  /**
   * Makes a new signing key and retires the others. `unless` (the newest key when the caller
   * decided) makes concurrent rotations by several replicas create one key, not one each.
   */
  async rotate(unless?: string): Promise<string> {
    const { publicKey, privateKey } = await generateKeyPair(TOKEN_ALGORITHM, { extractable: true });
    const jwk = await exportJWK(publicKey);
    const pkcs8 = await exportPKCS8(privateKey);
    const kid = newId();
    const at = new Date(this.now());
    const made = await this.db.transaction(async (tx) => {
      await tx.query("SELECT pg_advisory_xact_lock($1)", [ROTATION_LOCK]);
      const [current] = await tx.query<{ kid: string }>(
        "SELECT kid FROM signing_keys WHERE retired_at IS NULL ORDER BY created_at DESC LIMIT 1",
      );
      if (current && current.kid !== unless) return current.kid;
      await tx.query("UPDATE signing_keys SET retired_at = $1 WHERE retired_at IS NULL", [at]);
      await tx.query(
        "INSERT INTO signing_keys (kid, alg, public_jwk, private_pkcs8, created_at) VALUES ($1, $2, $3, $4, $5)",
        [kid, TOKEN_ALGORITHM, JSON.stringify({ kty: jwk.kty, crv: jwk.crv, x: jwk.x, y: jwk.y }), pkcs8, at],
      );
      return kid;
    });
    this.signer = undefined;
    return made;
  }

  /** The keys that verify tokens still in their lifetime. */
  async published(): Promise<PublishedKey[]> {
    const rows = await this.db.query<KeyRow>(
      `SELECT ${cols("signing_keys")} FROM signing_keys WHERE retired_at IS NULL OR retired_at > $1 ORDER BY created_at DESC`,
      [new Date(this.now() - this.options.tokenTtlMs)],
    );
    return rows.map((r) => ({
      kid: r.kid,
      alg: r.alg,
      kty: r.public_jwk.kty,
      crv: r.public_jwk.crv,
      x: r.public_jwk.x,
      y: r.public_jwk.y,
      createdAt: new Date(r.created_at),
      retiredAt: r.retired_at ? new Date(r.retired_at) : undefined,
    }));
  }

  /** Signs a token's claims with the current key (its kid in the header). */
  async sign(claims: TokenClaims): Promise<string> {
    const signer = await this.currentSigner();
    return new SignJWT({ ...claims })
      .setProtectedHeader({ alg: TOKEN_ALGORITHM, kid: signer.kid, typ: "JWT" })
      .sign(signer.key);
  }

  private async currentSigner(): Promise<{ kid: string; key: SignKey }> {
    const reloadMs = this.options.reloadMs ?? 10_000;
    if (this.signer && this.now() - this.signer.loadedAt < reloadMs) return this.signer;
    const row = await this.newestActive();
    if (!row) throw new Error("no signing key: ensure() was not called");
    if (this.signer?.kid !== row.kid) {
      this.signer = {
        kid: row.kid,
        key: await importPKCS8(row.private_pkcs8, TOKEN_ALGORITHM),
        loadedAt: this.now(),
      };
    } else {
      this.signer.loadedAt = this.now();
    }
    return this.signer;
  }

  private async newestActive(): Promise<KeyRow | undefined> {
    const [row] = await this.db.query<KeyRow>(
      `SELECT ${cols("signing_keys")} FROM signing_keys WHERE retired_at IS NULL ORDER BY created_at DESC LIMIT 1`,
    );
    return row ? { ...row, created_at: new Date(row.created_at) } : undefined;
  }

  private async pruneExpired(): Promise<void> {
    await this.db.query("DELETE FROM signing_keys WHERE retired_at IS NOT NULL AND retired_at <= $1", [
      new Date(this.now() - this.options.tokenTtlMs),
    ]);
  }
}
