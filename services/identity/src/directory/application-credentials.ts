// Application credentials: a user's secret for one project with a subset of its roles there, for
// programs. The secret is shown once, at creation, and stored hashed like a password. Deleting
// one revokes the tokens made from it.
import { randomBytes } from "node:crypto";
import { conflict, notFound, type Queryable } from "@stratus/runtime";
import type { PasswordHasher } from "../auth/password-hasher.js";
import { cols } from "../columns.js";
import { newId } from "../identifiers.js";
import type { Work } from "../tokens/revocation-log.js";
import { isUniqueViolation } from "./sql-errors.js";

export interface ApplicationCredentialRecord {
  id: string;
  userId: string;
  projectId: string;
  name: string;
  description: string;
  roleIds: string[];
  unrestricted: boolean;
  expiresAt: Date | undefined;
}

interface Row extends Record<string, unknown> {
  id: string;
  user_id: string;
  project_id: string;
  name: string;
  description: string;
  secret_hash: string;
  role_ids: string[];
  unrestricted: boolean;
  expires_at: Date | null;
}

function fromRow(r: Row): ApplicationCredentialRecord {
  return {
    id: r.id,
    userId: r.user_id,
    projectId: r.project_id,
    name: r.name,
    description: r.description,
    roleIds: r.role_ids,
    unrestricted: r.unrestricted,
    expiresAt: r.expires_at ? new Date(r.expires_at) : undefined,
  };
}

export class ApplicationCredentials {
  constructor(
    private readonly db: Queryable,
    private readonly hasher: PasswordHasher,
  ) {}

  async find(userId: string, id: string): Promise<ApplicationCredentialRecord | undefined> {
    const [row] = await this.db.query<Row>(
      `SELECT ${cols("application_credentials")} FROM application_credentials WHERE id = $1 AND user_id = $2`,
      [id, userId],
    );
    return row ? fromRow(row) : undefined;
  }

  async get(userId: string, id: string): Promise<ApplicationCredentialRecord> {
    const c = await this.find(userId, id);
    if (!c) throw notFound(`Could not find Application Credential: ${id}.`);
    return c;
  }

  async list(
    userId: string,
    filter: { name?: string | undefined } = {},
  ): Promise<ApplicationCredentialRecord[]> {
    const rows = await this.db.query<Row>(
      `SELECT ${cols("application_credentials")} FROM application_credentials WHERE user_id = $1 AND ($2::text IS NULL OR name = $2) ORDER BY name`,
      [userId, filter.name ?? null],
    );
    return rows.map(fromRow);
  }

  /** The credential and whether `secret` is its secret (same cost whether it exists or not). */
  async check(
    ref: { id: string } | { name: string; userId: string },
    secret: string,
  ): Promise<ApplicationCredentialRecord | undefined> {
    const [row] =
      "id" in ref
        ? await this.db.query<Row>(
            `SELECT ${cols("application_credentials")} FROM application_credentials WHERE id = $1`,
            [ref.id],
          )
        : await this.db.query<Row>(
            `SELECT ${cols("application_credentials")} FROM application_credentials WHERE name = $1 AND user_id = $2`,
            [ref.name, ref.userId],
          );
    const ok = await this.hasher.verify(row?.secret_hash, secret);
    return ok && row ? fromRow(row) : undefined;
  }

  /** Creates it; the secret (given, or made here) is returned this once. */
  async create(
    w: Work,
    c: Omit<ApplicationCredentialRecord, "id">,
    secret: string | undefined,
  ): Promise<{ credential: ApplicationCredentialRecord; secret: string }> {
    const plain = secret ?? randomBytes(64).toString("base64url");
    const hash = await this.hasher.hash(plain);
    try {
      const [row] = await w.tx.query<Row>(
        `INSERT INTO application_credentials
           (id, user_id, project_id, name, description, secret_hash, role_ids, unrestricted, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING ${cols("application_credentials")}`,
        [
          newId(),
          c.userId,
          c.projectId,
          c.name,
          c.description,
          hash,
          c.roleIds,
          c.unrestricted,
          c.expiresAt ?? null,
        ],
      );
      return { credential: fromRow(row!), secret: plain };
    } catch (err) {
      if (isUniqueViolation(err)) {
        throw conflict(
          `Conflict occurred attempting to store application_credential - Duplicate entry found with name ${c.name}.`,
        );
      }
      throw err;
    }
  }

  async delete(w: Work, userId: string, id: string): Promise<void> {
    const rows = await w.tx.query(
      "DELETE FROM application_credentials WHERE id = $1 AND user_id = $2 RETURNING 1",
      [id, userId],
    );
    if (rows.length === 0) throw notFound(`Could not find Application Credential: ${id}.`);
    w.revoke({ applicationCredentialId: id });
  }
}
