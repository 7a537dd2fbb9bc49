// Where a core operation runs, and what happens once its data is durable: in one transaction, or
// as autocommitted statements; either way the events and placement work it queued in its outbox
// are handed to `committed` only after the commit (published, placement kept in step).
import type { Database } from "@stratus/runtime";
import { type Caller, Outbox, type Tx } from "./context.js";
import { overQuota } from "./quotas.js";

/** The work's outcome, a refusal by the schema (a quota) in the service's words. */
async function refused<T>(work: Promise<T>): Promise<T> {
  try {
    return await work;
  } catch (err) {
    throw overQuota(err) ?? err;
  }
}

/** What is done with a committed operation's outbox. */
export type Committed = (out: Outbox) => Promise<void>;

export class Work {
  constructor(
    readonly db: Database,
    private readonly committed: Committed,
  ) {}

  /** fn in one transaction (run again on a serialization failure, with a fresh outbox). */
  async transaction<T>(caller: Caller, fn: (tx: Tx) => Promise<T>): Promise<T> {
    let out = new Outbox();
    const result = await refused(
      this.db.transaction(async (q) => {
        out = new Outbox();
        return fn({ q, out, caller });
      }),
    );
    await this.committed(out);
    return result;
  }

  /** fn whose work is one statement: autocommitted, no transaction around it. */
  async statement<T>(caller: Caller, fn: (tx: Tx) => Promise<T>): Promise<T> {
    const out = new Outbox();
    const result = await refused(fn({ q: this.db, out, caller }));
    await this.committed(out);
    return result;
  }
}
