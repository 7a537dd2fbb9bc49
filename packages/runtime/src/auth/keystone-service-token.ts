// The service's own Keystone token, which vouches for its validation requests (X-Auth-Token). It is
// renewed before it expires, as keystoneauth does, and dropped when Keystone refuses it (revoked).
import type { IssuedToken, KeystoneClient, ServiceCredentials } from "./keystone-client.js";

/** keystoneauth's MIN_TOKEN_LIFE_SECONDS: a token this close to its expiry is renewed first. */
const RENEW_BEFORE_EXPIRY_MS = 120_000;

export class KeystoneServiceToken {
  private current: { token: string; renewAt: number; expiresAt: number } | undefined;
  private issuing: Promise<string> | undefined;

  constructor(
    private readonly client: KeystoneClient,
    /** Asked at every authentication (a password kept in a file may have been rotated). */
    private readonly credentials: () => ServiceCredentials,
    private readonly now: () => number,
  ) {}

  /** The current token while it has not expired (maybe due for renewal); undefined otherwise. */
  peek(): string | undefined {
    const current = this.current;
    return current && this.now() < current.expiresAt ? current.token : undefined;
  }

  /** When the current token is due for renewal (epoch ms); undefined before the first. */
  renewsAt(): number | undefined {
    return this.current?.renewAt;
  }

  /** A service token with life left in it; concurrent callers share one authentication. */
  async get(): Promise<string> {
    const current = this.current;
    if (current && this.now() < current.renewAt) return current.token;
    this.issuing ??= this.issue().finally(() => {
      this.issuing = undefined;
    });
    return this.issuing;
  }

  /** Forgets a token Keystone refused, so that the next get() authenticates again. */
  discard(token: string): void {
    if (this.current?.token === token) this.current = undefined;
  }

  private async issue(): Promise<string> {
    const issued = await this.client.issueServiceToken(this.credentials());
    this.current = {
      token: issued.token,
      renewAt: renewalTime(issued),
      expiresAt: issued.expiresAt.getTime(),
    };
    return issued.token;
  }
}

/**
 * When to renew: two minutes before expiry, or with a quarter of its life left when Keystone hands
 * out tokens shorter than eight minutes, so that a short-lived token is still used for most of its life.
 */
function renewalTime({ issuedAt, expiresAt }: IssuedToken): number {
  const lifetime = expiresAt.getTime() - issuedAt.getTime();
  return expiresAt.getTime() - Math.min(RENEW_BEFORE_EXPIRY_MS, lifetime / 4);
}
