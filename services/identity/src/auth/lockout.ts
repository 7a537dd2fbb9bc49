// Keystone's lockout (security_compliance lockout_failure_attempts / lockout_duration): after that
// many consecutive failed password checks a user cannot authenticate for that long, whatever the
// password. Failures during the lock are not counted; a success resets the count.
import type { Queryable } from "@stratus/runtime";

export interface LockoutPolicy {
  /** Failures before the lock (0: never locked). */
  failureAttempts: number;
  durationMs: number;
}

export interface FailureState {
  failed_auth_count: number;
  failed_auth_at: Date | null;
}

export class Lockout {
  constructor(
    private readonly db: Queryable,
    private readonly policy: LockoutPolicy,
    private readonly now: () => number = Date.now,
  ) {}

  isLocked(user: FailureState): boolean {
    if (this.policy.failureAttempts <= 0 || !user.failed_auth_at) return false;
    return (
      user.failed_auth_count >= this.policy.failureAttempts &&
      this.now() - new Date(user.failed_auth_at).getTime() < this.policy.durationMs
    );
  }

  /** Counts a failure; a count whose last failure is older than the lock's duration starts again. */
  async recordFailure(userId: string): Promise<void> {
    if (this.policy.failureAttempts <= 0) return;
    const now = new Date(this.now());
    await this.db.query(
      `UPDATE users SET
         failed_auth_count = CASE WHEN failed_auth_at IS NULL OR failed_auth_at <= $2 THEN 1
                                  ELSE failed_auth_count + 1 END,
         failed_auth_at = $3
       WHERE id = $1`,
      [userId, new Date(now.getTime() - this.policy.durationMs), now],
    );
  }

  async recordSuccess(user: FailureState & { id: string }): Promise<void> {
    if (user.failed_auth_count === 0) return;
    await this.db.query("UPDATE users SET failed_auth_count = 0, failed_auth_at = NULL WHERE id = $1", [
      user.id,
    ]);
  }
}
