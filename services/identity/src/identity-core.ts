// The identity service without its transports: the directory over the database, the signing
// keys, token issue and validation, authentication. main.ts attaches REST, RPC and NATS to it;
// tests build it on a temporary database.
import type { Database, Logger } from "@stratus/runtime";
import { LocalTokenValidator, type Revocation, type RevocationListener } from "@stratus/runtime/auth";
import { Authenticator } from "./auth/authenticator.js";
import { Lockout, type LockoutPolicy } from "./auth/lockout.js";
import { type HashCost, PasswordHasher } from "./auth/password-hasher.js";
import { Directory } from "./directory/directory.js";
import { RevocationLog } from "./tokens/revocation-log.js";
import { SigningKeys } from "./tokens/signing-keys.js";
import { TokenService } from "./tokens/token-service.js";

/** Revocations between replicas: this one's announced, the others' followed. */
export interface RevocationEvents {
  publish(r: Revocation): void;
  watch(listener: RevocationListener): Promise<() => void>;
}

export interface IdentityCoreOptions {
  tokenTtlSeconds: number;
  /** A signing key older than this is replaced (0: never). */
  keyRotationMs: number;
  lockout: LockoutPolicy;
  hashCost: HashCost;
  logger: Logger;
  events?: RevocationEvents | undefined;
}

export class IdentityCore {
  readonly hasher: PasswordHasher;
  readonly revocations: RevocationLog;
  readonly dir: Directory;
  readonly keys: SigningKeys;
  readonly validator: LocalTokenValidator;
  readonly tokens: TokenService;
  readonly authenticator: Authenticator;

  private constructor(
    readonly db: Database,
    readonly options: IdentityCoreOptions,
  ) {
    const tokenTtlMs = options.tokenTtlSeconds * 1000;
    this.hasher = new PasswordHasher(options.hashCost);
    this.revocations = new RevocationLog(db, tokenTtlMs);
    const { events } = options;
    if (events) this.revocations.onRevoked((r) => events.publish(r));
    this.dir = new Directory(db, this.hasher, this.revocations);
    this.keys = new SigningKeys(db, { tokenTtlMs, rotationMs: options.keyRotationMs });
    // Tokens are validated here as in every other service: keys and revocations from the database,
    // this replica's revocations applied as they commit, the others' arriving as events.
    this.validator = new LocalTokenValidator(
      {
        signingKeys: async () => ({
          keys: await this.keys.published(),
          tokenTtlSeconds: options.tokenTtlSeconds,
        }),
        revocations: () => this.revocations.relevant(),
        watchRevocations: async (listener) => {
          const stopLocal = this.revocations.onRevoked((r) => listener.revoked(r));
          const stopEvents = await events?.watch(listener);
          return () => {
            stopLocal();
            stopEvents?.();
          };
        },
      },
      { logger: options.logger },
    );
    this.tokens = new TokenService(this.keys, this.validator, tokenTtlMs);
    const lockout = new Lockout(db, options.lockout);
    this.authenticator = new Authenticator(this.dir, this.hasher, lockout, this.tokens, options.logger);
  }

  static async open(db: Database, options: IdentityCoreOptions): Promise<IdentityCore> {
    const core = new IdentityCore(db, options);
    await core.keys.ensure();
    await core.validator.start();
    return core;
  }

  /** Periodic work: key rotation, and dropping revocations no token can match any more. */
  async upkeep(): Promise<void> {
    await this.keys.ensure();
    await this.revocations.prune();
  }

  close(): Promise<void> {
    return this.validator.close();
  }
}
