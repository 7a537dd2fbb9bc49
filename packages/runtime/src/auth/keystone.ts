// Validates tokens issued by an existing Keystone, the keystonemiddleware (auth_token) way: ask
// Keystone (GET /v3/auth/tokens, vouched for by the service's own token), keep the answer for a
// short TTL and never past the token's expiry, share one request among concurrent validations of
// the same token, and fail closed ("unavailable") whenever Keystone cannot give a clear answer.
import type { Logger } from "pino";
import { StratusError } from "../errors.js";
import type { AuthenticatedIdentity, TokenValidator } from "./identity.js";
import { KeystoneAnswerCache, tokenCacheKey } from "./keystone-cache.js";
import { KeystoneClient, type ValidationAnswer } from "./keystone-client.js";
import { KeystoneServiceToken } from "./keystone-service-token.js";

export interface KeystoneValidatorOptions {
  /** Keystone's v3 root, e.g. http://keystone:5000/v3. */
  url: string;
  serviceUser: { name: string; password: string; domainName: string };
  serviceProject: { name: string; domainName: string };
  /** How long an answer (valid or invalid) is reused: a revocation's worst-case delay. 0: never. */
  cacheTtlMs: number;
  cacheMaxEntries: number;
  /** Longest wait for one Keystone request. */
  timeoutMs: number;
}

export interface KeystoneValidatorSeams {
  /** The HTTP client (a proxy, a private CA); the global fetch by default. */
  fetch?: typeof fetch;
  /** The clock the cache and the service token's renewal read; Date.now by default. */
  now?: () => number;
  /** The service's own token, shared with its outgoing calls (service-auth.ts); made here by default. */
  serviceToken?: KeystoneServiceToken;
}

/**
 * Every token Keystone issues is printable ASCII without spaces (Fernet: base64url; JWS: base64url
 * and dots) and far below 8 KiB. Anything else is refused without asking Keystone: it could not be
 * sent as a header, and a flood of huge strings would cost hashing and memory.
 */
const TOKEN_SHAPE = /^[!-~]{1,8192}$/;

const refused = () => new StratusError("unauthorized", "The request you have made requires authentication.");

export class KeystoneTokenValidator implements TokenValidator {
  private readonly client: KeystoneClient;
  private readonly serviceToken: KeystoneServiceToken;
  private readonly cache: KeystoneAnswerCache;
  private readonly inFlight = new Map<string, Promise<AuthenticatedIdentity>>();
  private readonly now: () => number;
  private closed = false;

  constructor(
    private readonly options: KeystoneValidatorOptions,
    private readonly logger: Logger,
    seams: KeystoneValidatorSeams = {},
  ) {
    this.now = seams.now ?? Date.now;
    this.client = new KeystoneClient(options.url, options.timeoutMs, logger, seams.fetch);
    const credentials = { user: options.serviceUser, project: options.serviceProject };
    this.serviceToken =
      seams.serviceToken ?? new KeystoneServiceToken(this.client, () => credentials, this.now);
    this.cache = new KeystoneAnswerCache(options.cacheMaxEntries);
  }

  async validate(token: string): Promise<AuthenticatedIdentity> {
    if (this.closed) throw new StratusError("unavailable", "the token validator is closed");
    if (!TOKEN_SHAPE.test(token)) throw refused();
    const key = tokenCacheKey(token);
    const cached = this.cache.lookup(key, this.now());
    if (cached === "invalid") throw refused();
    if (cached) return cached;
    let pending = this.inFlight.get(key);
    if (!pending) {
      pending = this.askKeystone(token, key).finally(() => this.inFlight.delete(key));
      this.inFlight.set(key, pending);
    }
    return pending;
  }

  async close(): Promise<void> {
    this.closed = true;
    this.client.close();
    this.cache.clear();
  }

  private async askKeystone(token: string, key: string): Promise<AuthenticatedIdentity> {
    const answer = await this.validateWithServiceToken(token);
    const now = this.now();
    const ttlEnd = now + this.options.cacheTtlMs;
    if (answer === "invalid" || answer.expiresAt.getTime() <= now) {
      this.cache.remember(key, "invalid", ttlEnd, now);
      this.logger.debug({ token_hash: key.slice(0, 12) }, "Keystone refused a token");
      throw refused();
    }
    this.cache.remember(key, answer, Math.min(ttlEnd, answer.expiresAt.getTime()), now);
    return answer;
  }

  /** Keystone refusing the service token (401) means it expired early or was revoked: renew once. */
  private async validateWithServiceToken(
    token: string,
  ): Promise<Exclude<ValidationAnswer, "service_token_refused">> {
    for (let attempt = 1; ; attempt++) {
      const serviceToken = await this.serviceToken.get();
      const answer = await this.client.validateToken(serviceToken, token);
      if (answer !== "service_token_refused") return answer;
      this.serviceToken.discard(serviceToken);
      if (attempt === 2) {
        this.logger.error("Keystone refused a new service token too: check the service user and its role");
        throw new StratusError("unavailable", "Keystone refused the service token");
      }
      this.logger.warn("Keystone refused the service token; authenticating again");
    }
  }
}
