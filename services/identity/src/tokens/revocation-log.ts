// The revocations this service writes: each change that invalidates tokens (token deleted, user
// disabled or deleted, password changed, role removed, project or domain disabled or deleted,
// application credential deleted) writes a revocation event in the same transaction as the change,
// and once committed announces it: in this process at once, and to every service over NATS.

import type { Database, Queryable } from "@stratus/runtime";
import type { Revocation } from "@stratus/runtime/auth";
import { cols } from "../columns.js";
import { newId } from "../identifiers.js";

export type RevocationFields = Partial<
  Pick<Revocation, "auditId" | "userId" | "projectId" | "domainId" | "system" | "applicationCredentialId">
>;

/** A transaction that may revoke tokens: its revocations are announced once it has committed. */
export interface Work {
  tx: Queryable;
  revoke(fields: RevocationFields): void;
}

interface RevocationRow extends Record<string, unknown> {
  id: string;
  audit_id: string;
  user_id: string;
  project_id: string;
  domain_id: string;
  system: boolean;
  application_credential_id: string;
  issued_before: Date;
  revoked_at: Date;
}

function fromRow(r: RevocationRow): Revocation {
  return {
    id: r.id,
    auditId: r.audit_id,
    userId: r.user_id,
    projectId: r.project_id,
    domainId: r.domain_id,
    system: r.system,
    applicationCredentialId: r.application_credential_id,
    issuedBefore: new Date(r.issued_before),
    revokedAt: new Date(r.revoked_at),
  };
}

/** How far back revocations are kept beyond the token lifetime (clocks of two hosts). */
const CLOCK_SKEW_MS = 60_000;

export class RevocationLog {
  private readonly listeners = new Set<(r: Revocation) => void>();

  constructor(
    private readonly db: Database,
    private readonly tokenTtlMs: number,
    private readonly now: () => number = Date.now,
  ) {}

  /** Called with every revocation this process writes, after its transaction committed. */
  onRevoked(listener: (r: Revocation) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Runs fn in a transaction; the revocations it asked for are written in it and announced after. */
  async run<T>(fn: (w: Work) => Promise<T>): Promise<T> {
    let written: Revocation[] = [];
    const result = await this.db.transaction(async (tx) => {
      const pending: RevocationFields[] = [];
      const value = await fn({ tx, revoke: (fields) => pending.push(fields) });
      written = [];
      for (const fields of pending) written.push(await this.insert(tx, fields));
      return value;
    });
    for (const r of written) for (const l of this.listeners) l(r);
    return result;
  }

  /** The revocations that can still match a token in its lifetime. */
  async relevant(): Promise<Revocation[]> {
    const rows = await this.db.query<RevocationRow>(
      `SELECT ${cols("revocations")} FROM revocations WHERE issued_before >= $1 ORDER BY issued_before`,
      [new Date(this.now() - this.tokenTtlMs - CLOCK_SKEW_MS)],
    );
    return rows.map(fromRow);
  }

  /** Deletes the revocations no token in its lifetime can match any more. */
  async prune(): Promise<void> {
    await this.db.query("DELETE FROM revocations WHERE issued_before < $1", [
      new Date(this.now() - this.tokenTtlMs - CLOCK_SKEW_MS),
    ]);
  }

  private async insert(tx: Queryable, f: RevocationFields): Promise<Revocation> {
    const at = new Date(this.now());
    const [row] = await tx.query<RevocationRow>(
      `INSERT INTO revocations (id, audit_id, user_id, project_id, domain_id, system, application_credential_id,
         issued_before, revoked_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8) RETURNING ${cols("revocations")}`,
      [
        newId(),
        f.auditId ?? "",
        f.userId ?? "",
        f.projectId ?? "",
        f.domainId ?? "",
        f.system ?? false,
        f.applicationCredentialId ?? "",
        at,
      ],
    );
    return fromRow(row!);
  }
}
