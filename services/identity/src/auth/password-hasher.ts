// Passwords and application credential secrets, hashed with argon2id (memory-hard; RFC 9106) by
// @node-rs/argon2, which runs the hash on libuv's thread pool, off the event loop. The cost is in
// each PHC string, so a hash made under older parameters still verifies after they change.
// A check for an unknown user runs against a hash made at start with the same parameters, so that
// it takes as long as a wrong password: the answer's timing does not tell whether the user exists.
import { hash, verify } from "@node-rs/argon2";

/** Algorithm.Argon2id (a const enum, which isolated modules cannot read). */
const ARGON2ID = 2;

export interface HashCost {
  /** Memory per hash, KiB (OWASP's argon2id floor: 19 MiB with 2 passes). */
  memoryKib: number;
  /** Passes over the memory. */
  timeCost: number;
}

export class PasswordHasher {
  private decoy: Promise<string> | undefined;

  constructor(private readonly cost: HashCost) {}

  hash(secret: string): Promise<string> {
    return hash(secret, {
      algorithm: ARGON2ID,
      memoryCost: this.cost.memoryKib,
      timeCost: this.cost.timeCost,
      parallelism: 1,
    });
  }

  /** Whether secret matches; `stored` undefined (no such user, no password) costs the same and fails. */
  async verify(stored: string | null | undefined, secret: string): Promise<boolean> {
    if (!stored) {
      this.decoy ??= this.hash("decoy password for unknown users");
      await verify(await this.decoy, secret).catch(() => false);
      return false;
    }
    try {
      return await verify(stored, secret);
    } catch {
      return false;
    }
  }
}
