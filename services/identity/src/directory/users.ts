// Users: each in one domain, with an argon2id password hash that never leaves this module except
// to be verified. Disabling or deleting a user, and changing its password, revoke its tokens.
import { conflict, invalidInput, notFound, type Queryable } from "@stratus/runtime";
import type { FailureState } from "../auth/lockout.js";
import type { PasswordHasher } from "../auth/password-hasher.js";
import { cols } from "../columns.js";
import { newId } from "../identifiers.js";
import type { Work } from "../tokens/revocation-log.js";
import { isForeignKeyViolation, isUniqueViolation } from "./sql-errors.js";

export interface UserRecord {
  id: string;
  name: string;
  domainId: string;
  enabled: boolean;
  defaultProjectId: string | undefined;
  /** Keystone's extra attributes (description, email, …), returned as top-level fields. */
  extra: Record<string, unknown>;
}

/** What authenticating a user needs besides its record. */
export interface UserCredentials extends UserRecord, FailureState {
  passwordHash: string | null;
}

export interface UserChanges {
  name?: string | undefined;
  enabled?: boolean | undefined;
  password?: string | undefined;
  defaultProjectId?: string | null | undefined;
  extra?: Record<string, unknown> | undefined;
}

export interface UserFilter {
  name?: string | undefined;
  domainId?: string | undefined;
  enabled?: boolean | undefined;
}

function fromRow(r: Record<string, unknown>): UserCredentials {
  return {
    id: r.id as string,
    name: r.name as string,
    domainId: r.domain_id as string,
    enabled: r.enabled as boolean,
    defaultProjectId: (r.default_project_id as string | null) ?? undefined,
    extra: (r.extra as Record<string, unknown>) ?? {},
    passwordHash: (r.password_hash as string | null) ?? null,
    failed_auth_count: r.failed_auth_count as number,
    failed_auth_at: (r.failed_auth_at as Date | null) ?? null,
  };
}

function publicPart(u: UserCredentials): UserRecord {
  return {
    id: u.id,
    name: u.name,
    domainId: u.domainId,
    enabled: u.enabled,
    defaultProjectId: u.defaultProjectId,
    extra: u.extra,
  };
}

const duplicate = (name: string, domainId: string) =>
  conflict(
    `Conflict occurred attempting to store user - Duplicate entry found with name ${name} at domain ID ${domainId}.`,
  );

export class Users {
  constructor(
    private readonly db: Queryable,
    private readonly hasher: PasswordHasher,
  ) {}

  async find(id: string, q: Queryable = this.db): Promise<UserRecord | undefined> {
    const u = await this.credentials(id, q);
    return u ? publicPart(u) : undefined;
  }

  async get(id: string, q: Queryable = this.db): Promise<UserRecord> {
    const u = await this.find(id, q);
    if (!u) throw notFound(`Could not find user: ${id}.`);
    return u;
  }

  async credentials(id: string, q: Queryable = this.db): Promise<UserCredentials | undefined> {
    const [row] = await q.query(`SELECT ${cols("users")} FROM users WHERE id = $1`, [id]);
    return row ? fromRow(row) : undefined;
  }

  async credentialsByName(name: string, domainId: string): Promise<UserCredentials | undefined> {
    const [row] = await this.db.query(
      `SELECT ${cols("users")} FROM users WHERE name = $1 AND domain_id = $2`,
      [name, domainId],
    );
    return row ? fromRow(row) : undefined;
  }

  async list(filter: UserFilter = {}): Promise<UserRecord[]> {
    const rows = await this.db.query(
      `SELECT ${cols("users")} FROM users
       WHERE ($1::text IS NULL OR name = $1) AND ($2::text IS NULL OR domain_id = $2)
         AND ($3::boolean IS NULL OR enabled = $3)
       ORDER BY name, id`,
      [filter.name ?? null, filter.domainId ?? null, filter.enabled ?? null],
    );
    return rows.map((r) => publicPart(fromRow(r)));
  }

  async create(
    w: Work,
    u: Omit<UserRecord, "id"> & { id?: string; password?: string | undefined },
  ): Promise<UserRecord> {
    const hash = u.password === undefined ? null : await this.hasher.hash(u.password);
    try {
      const [row] = await w.tx.query(
        `INSERT INTO users (id, name, domain_id, enabled, password_hash, password_created_at, default_project_id, extra)
         VALUES ($1, $2, $3, $4, $5, CASE WHEN $5::text IS NULL THEN NULL ELSE now() END, $6, $7) RETURNING ${cols("users")}`,
        [
          u.id ?? newId(),
          u.name,
          u.domainId,
          u.enabled,
          hash,
          u.defaultProjectId ?? null,
          JSON.stringify(u.extra),
        ],
      );
      return publicPart(fromRow(row!));
    } catch (err) {
      if (isUniqueViolation(err)) throw duplicate(u.name, u.domainId);
      if (isForeignKeyViolation(err)) throw invalidInput(`Could not find domain: ${u.domainId}.`);
      throw err;
    }
  }

  async update(w: Work, id: string, c: UserChanges): Promise<UserRecord> {
    const before = await this.get(id, w.tx);
    const hash = c.password === undefined ? null : await this.hasher.hash(c.password);
    try {
      const [row] = await w.tx.query(
        `UPDATE users SET name = coalesce($2, name), enabled = coalesce($3, enabled),
           password_hash = coalesce($4, password_hash),
           password_created_at = CASE WHEN $4::text IS NULL THEN password_created_at ELSE now() END,
           failed_auth_count = CASE WHEN $4::text IS NULL THEN failed_auth_count ELSE 0 END,
           default_project_id = CASE WHEN $5 THEN $6 ELSE default_project_id END,
           extra = extra || $7::jsonb
         WHERE id = $1 RETURNING ${cols("users")}`,
        [
          id,
          c.name ?? null,
          c.enabled ?? null,
          hash,
          c.defaultProjectId !== undefined,
          c.defaultProjectId ?? null,
          JSON.stringify(c.extra ?? {}),
        ],
      );
      if ((before.enabled && c.enabled === false) || hash !== null) w.revoke({ userId: id });
      return publicPart(fromRow(row!));
    } catch (err) {
      if (isUniqueViolation(err)) throw duplicate(c.name ?? before.name, before.domainId);
      throw err;
    }
  }

  async delete(w: Work, id: string): Promise<void> {
    await this.get(id, w.tx);
    await w.tx.query("DELETE FROM users WHERE id = $1", [id]);
    w.revoke({ userId: id });
  }
}
