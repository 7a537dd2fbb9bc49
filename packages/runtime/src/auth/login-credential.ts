// The credential a process's outgoing calls carry: a password login (Keystone's password method,
// to Stratus's identity or an existing Keystone) whose token is kept, renewed before it expires
// (keystone-service-token.ts says when) and again when a callee refuses it (revoked, or expired
// early). A service logs in as its service user (service-auth.ts); an operator's script may log in
// as a user of its own (loginAsUser).
import type { Logger } from "../log.js";
import type { CallerCredential } from "./caller-credential.js";
import type { KeystoneServiceToken } from "./keystone-service-token.js";
import type { ServicePrincipalName } from "./principal.js";

export class LoginCredential implements CallerCredential {
  private timer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(
    /** The service principal logging in; undefined for a user of its own (a script's admin). */
    readonly service: ServicePrincipalName | undefined,
    private readonly source: KeystoneServiceToken,
    private readonly logger: Logger,
    private readonly options: { retryMs?: number; now?: () => number } = {},
  ) {}

  /**
   * Logs in, trying again until it works (the identity service may start after this service),
   * then keeps the token fresh. Rejects only when closed first.
   */
  async start(): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        await this.source.get();
        break;
      } catch (err) {
        if (this.closed) throw err;
        if (attempt === 1 || attempt % 30 === 0) {
          this.logger.warn({ err, attempt }, "could not log in yet; trying again");
        }
        await this.pause();
      }
    }
    this.schedule();
  }

  token(): string | undefined {
    return this.source.peek();
  }

  async renew(rejected: string | undefined): Promise<void> {
    const current = this.source.peek();
    if (rejected !== undefined && current !== undefined && current !== rejected) return;
    if (rejected !== undefined) this.source.discard(rejected);
    await this.source.get();
    this.schedule();
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.timer);
  }

  /** Renews when the token is due (a failure keeps the old token, still valid, and tries again). */
  private schedule(): void {
    clearTimeout(this.timer);
    const at = this.source.renewsAt();
    if (this.closed || at === undefined) return;
    const now = this.options.now ?? Date.now;
    this.timer = setTimeout(
      () =>
        void this.source.get().then(
          () => this.schedule(),
          async (err: unknown) => {
            this.logger.warn({ err }, "could not renew the token; trying again");
            await this.pause();
            this.schedule();
          },
        ),
      Math.max(0, at - now()),
    );
    this.timer.unref();
  }

  private pause(): Promise<void> {
    return new Promise((r) => setTimeout(r, this.options.retryMs ?? 1000).unref());
  }
}
