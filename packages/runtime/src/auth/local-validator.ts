// Validates Stratus tokens inside any service, with no call per request: the JWS signature is
// checked with the identity service's public keys (fetched at start, and again when a token names
// a key not yet known, at most once per keyRefreshIntervalMs), the expiry with the local clock,
// and revocation against a list loaded at start and kept up to date from the identity service's
// events. A token whose revocation state cannot be known (the list never loaded, or events may
// have been missed since a disconnect and the list is not loaded again yet) is refused: fail closed.
import { decodeProtectedHeader, importJWK, errors as joseErrors, jwtVerify } from "jose";
import { StratusError } from "../errors.js";
import type { Logger } from "../log.js";
import type { AuthenticatedIdentity, TokenValidator } from "./identity.js";
import { type Revocation, RevocationList, revocationBuckets } from "./revocations.js";
import { identityFromClaims, MalformedClaims, TOKEN_ALGORITHM } from "./token-claims.js";

/** A public key as a JSON Web Key (EC P-256 for ES256). */
export interface PublicSigningKey {
  kid: string;
  alg: string;
  kty: string;
  crv: string;
  x: string;
  y: string;
}

export interface RevocationListener {
  revoked(r: Revocation): void;
  /** Revocations may be missed from now on (the event connection dropped). */
  lost(): void;
  /** Revocations flow again: what was missed must be loaded again. */
  resumed(): void;
}

/** Where a validator gets the issuer's keys and revocations (the identity service over RPC and NATS). */
export interface TokenKeySource {
  signingKeys(): Promise<{ keys: PublicSigningKey[]; tokenTtlSeconds: number }>;
  /** The revocations that can still match a token in its lifetime. */
  revocations(): Promise<Revocation[]>;
  /** Follows revocations as they happen; resolves once following (returns how to stop). */
  watchRevocations(listener: RevocationListener): Promise<() => void>;
}

export interface LocalTokenValidatorOptions {
  /** Verified tokens whose claims are kept until they expire (the oldest go first). */
  cacheSize?: number;
  /** Least time between two key fetches caused by tokens naming an unknown key. */
  keyRefreshIntervalMs?: number;
  /** Wait between two tries to load the revocations. */
  retryMs?: number;
  /**
   * How often the revocations are loaded again besides the events (60 s): an event lost with a
   * NATS node that died while routing it, on a connection of ours that never dropped, takes
   * effect by then.
   */
  revocationReloadMs?: number;
  logger?: Logger;
  /** The clock (tests). */
  now?: () => number;
}

interface VerifiedToken {
  identity: AuthenticatedIdentity;
  expiresMs: number;
  buckets: string[];
}

/** Longest token accepted, in characters (a Stratus token is well under 2 KiB). */
const MAX_TOKEN_LENGTH = 8192;
/** Revocations are kept this much longer than the tokens' lifetime (clocks of two hosts). */
const CLOCK_SKEW_MS = 60_000;

function refused(message: string): StratusError {
  return new StratusError("unauthorized", message);
}

function freeze(identity: AuthenticatedIdentity): AuthenticatedIdentity {
  Object.freeze(identity.roles);
  Object.freeze(identity.auditIds);
  Object.freeze(identity.methods);
  return Object.freeze(identity);
}

type VerifyKey = Awaited<ReturnType<typeof importJWK>>;

export class LocalTokenValidator implements TokenValidator {
  private keys = new Map<string, VerifyKey>();
  private tokenTtlMs = 3600_000;
  private readonly revocations = new RevocationList();
  private revocationsKnown = false;
  /** Counts losses of the revocation feed: a load that saw one during its read does not count. */
  private feedEpoch = 0;
  private readonly cache = new Map<string, VerifiedToken>();
  private lastKeyFetch = Number.NEGATIVE_INFINITY;
  private keyFetch: Promise<void> | undefined;
  private unwatch: (() => void) | undefined;
  private upkeepTimer: NodeJS.Timeout | undefined;
  private closed = false;
  private readonly cacheSize: number;
  private readonly keyRefreshIntervalMs: number;
  private readonly retryMs: number;
  private readonly now: () => number;

  constructor(
    private readonly source: TokenKeySource,
    private readonly options: LocalTokenValidatorOptions = {},
  ) {
    this.cacheSize = options.cacheSize ?? 10_000;
    this.keyRefreshIntervalMs = options.keyRefreshIntervalMs ?? 1000;
    this.retryMs = options.retryMs ?? 1000;
    this.now = options.now ?? Date.now;
  }

  /**
   * Follows revocations, then loads them and the keys. Resolves once both are loaded (retrying
   * until then); tokens are refused until that moment.
   */
  async start(): Promise<void> {
    this.unwatch = await this.source.watchRevocations({
      revoked: (r) => this.revocations.add(r),
      lost: () => {
        this.feedEpoch++;
        this.revocationsKnown = false;
      },
      resumed: () => void this.loadRevocations(),
    });
    this.upkeepTimer = setInterval(() => {
      this.prune();
      void this.reloadRevocations();
    }, this.options.revocationReloadMs ?? 60_000);
    this.upkeepTimer.unref();
    await Promise.all([this.loadKeys(), this.loadRevocations()]);
  }

  /** Whether tokens can be validated now (the revocation state is known). */
  get ready(): boolean {
    return this.revocationsKnown;
  }

  async validate(token: string): Promise<AuthenticatedIdentity> {
    if (typeof token !== "string" || token.length === 0 || token.length > MAX_TOKEN_LENGTH) {
      throw refused("The token is malformed.");
    }
    const cached = this.cache.get(token) ?? (await this.verify(token));
    if (this.now() >= cached.expiresMs) {
      this.cache.delete(token);
      throw refused("The token has expired.");
    }
    if (!this.revocationsKnown) {
      throw new StratusError("unavailable", "Token revocations are not known yet; try again.");
    }
    if (this.revocations.isRevoked(cached.identity, cached.buckets)) throw refused("The token was revoked.");
    return cached.identity;
  }

  async close(): Promise<void> {
    this.closed = true;
    this.unwatch?.();
    if (this.upkeepTimer) clearInterval(this.upkeepTimer);
    this.cache.clear();
  }

  private async verify(token: string): Promise<VerifiedToken> {
    let kid: string | undefined;
    try {
      const header = decodeProtectedHeader(token);
      if (header.alg !== TOKEN_ALGORITHM || typeof header.kid !== "string") throw refused("bad header");
      kid = header.kid;
    } catch {
      throw refused("The token is malformed.");
    }
    let key = this.keys.get(kid);
    if (!key) {
      await this.refreshKeys().catch((err) =>
        this.options.logger?.warn({ err }, "could not fetch the identity service's signing keys"),
      );
      key = this.keys.get(kid);
      if (!key) throw refused("The token is signed by an unknown key.");
    }
    let payload: Record<string, unknown>;
    try {
      ({ payload } = await jwtVerify(token, key, {
        algorithms: [TOKEN_ALGORITHM],
        currentDate: new Date(this.now()),
      }));
    } catch (err) {
      throw refused(
        err instanceof joseErrors.JWTExpired ? "The token has expired." : "The token is invalid.",
      );
    }
    let identity: AuthenticatedIdentity;
    try {
      identity = freeze(identityFromClaims(payload));
    } catch (err) {
      if (err instanceof MalformedClaims) throw refused("The token is malformed.");
      throw err;
    }
    const verified = {
      identity,
      expiresMs: identity.expiresAt.getTime(),
      buckets: revocationBuckets(identity),
    };
    if (this.cache.size >= this.cacheSize) {
      const oldest = this.cache.keys().next();
      if (!oldest.done) this.cache.delete(oldest.value);
    }
    this.cache.set(token, verified);
    return verified;
  }

  /**
   * Fetches the keys, at most once per keyRefreshIntervalMs unless `now`: a caller within the
   * interval waits for its end rather than going without (the unknown key may be one the identity
   * rotated in just after the last fetch); callers at once share one fetch.
   */
  private refreshKeys(now = false): Promise<void> {
    if (this.keyFetch) return this.keyFetch;
    const wait = now ? 0 : this.lastKeyFetch + this.keyRefreshIntervalMs - this.now();
    if (wait > 0) {
      this.keyFetch = new Promise<void>((r) => setTimeout(r, wait).unref()).then(() => {
        this.keyFetch = undefined;
        return this.refreshKeys(true);
      });
      return this.keyFetch;
    }
    this.lastKeyFetch = this.now();
    this.keyFetch = (async () => {
      try {
        const { keys, tokenTtlSeconds } = await this.source.signingKeys();
        const imported = new Map<string, VerifyKey>();
        for (const k of keys) {
          if (k.alg !== TOKEN_ALGORITHM || k.kty !== "EC" || k.crv !== "P-256") continue;
          imported.set(k.kid, await importJWK({ kty: k.kty, crv: k.crv, x: k.x, y: k.y }, TOKEN_ALGORITHM));
        }
        this.keys = imported;
        if (tokenTtlSeconds > 0) this.tokenTtlMs = tokenTtlSeconds * 1000;
      } finally {
        this.keyFetch = undefined;
      }
    })();
    return this.keyFetch;
  }

  private async loadKeys(): Promise<void> {
    while (!this.closed) {
      try {
        await this.refreshKeys(true);
        return;
      } catch (err) {
        this.options.logger?.warn({ err }, "could not load the signing keys; tokens are refused until then");
        await new Promise((r) => setTimeout(r, this.retryMs).unref());
      }
    }
  }

  private async loadRevocations(): Promise<void> {
    while (!this.closed) {
      const epoch = this.feedEpoch;
      try {
        await this.addRevocations();
        if (epoch === this.feedEpoch) this.revocationsKnown = true;
        this.prune();
        return;
      } catch (err) {
        this.options.logger?.warn({ err }, "could not load token revocations; tokens are refused until then");
        await new Promise((r) => setTimeout(r, this.retryMs).unref());
      }
    }
  }

  /** The revocations still relevant, as the identity lists them, added to those known. */
  private async addRevocations(): Promise<void> {
    for (const r of await this.source.revocations()) this.revocations.add(r);
  }

  /** One more load, beside the events (see revocationReloadMs); a failure changes nothing. */
  private async reloadRevocations(): Promise<void> {
    if (!this.revocationsKnown || this.closed) return;
    try {
      await this.addRevocations();
    } catch (err) {
      this.options.logger?.warn({ err }, "could not load token revocations again; the events still count");
    }
  }

  private prune(): void {
    this.revocations.prune(new Date(this.now() - this.tokenTtlMs - CLOCK_SKEW_MS));
  }
}
