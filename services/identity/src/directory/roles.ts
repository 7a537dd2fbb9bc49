// Roles and the rules between them: a prior role implies others (admin implies member implies
// reader), so a user holding the prior role holds the implied ones too. A change that takes
// roles away from tokens already issued (a role deleted, a rule removed) revokes the tokens of
// every user holding a role it affects.
import { conflict, invalidInput, notFound, type Queryable } from "@stratus/runtime";
import { cols } from "../columns.js";
import { newId } from "../identifiers.js";
import type { Work } from "../tokens/revocation-log.js";
import { isUniqueViolation } from "./sql-errors.js";

export interface RoleRecord {
  id: string;
  name: string;
  description: string;
  extra: Record<string, unknown>;
}

export interface Implication {
  priorRoleId: string;
  impliedRoleId: string;
}

function fromRow(r: Record<string, unknown>): RoleRecord {
  return {
    id: r.id as string,
    name: r.name as string,
    description: r.description as string,
    extra: (r.extra as Record<string, unknown>) ?? {},
  };
}

const duplicate = (name: string) =>
  conflict(`Conflict occurred attempting to store role - Duplicate entry found with name ${name}.`);

/** Every role reached from `start` through the rules, `start` included. */
export function closure(start: Iterable<string>, rules: Implication[]): Set<string> {
  const implies = new Map<string, string[]>();
  for (const r of rules) implies.set(r.priorRoleId, [...(implies.get(r.priorRoleId) ?? []), r.impliedRoleId]);
  const seen = new Set<string>();
  const stack = [...start];
  while (stack.length) {
    const id = stack.pop()!;
    if (seen.has(id)) continue;
    seen.add(id);
    stack.push(...(implies.get(id) ?? []));
  }
  return seen;
}

export class Roles {
  constructor(private readonly db: Queryable) {}

  async find(id: string, q: Queryable = this.db): Promise<RoleRecord | undefined> {
    const [row] = await q.query(`SELECT ${cols("roles")} FROM roles WHERE id = $1`, [id]);
    return row ? fromRow(row) : undefined;
  }

  async get(id: string, q: Queryable = this.db): Promise<RoleRecord> {
    const r = await this.find(id, q);
    if (!r) throw notFound(`Could not find role: ${id}.`);
    return r;
  }

  async findByName(name: string, q: Queryable = this.db): Promise<RoleRecord | undefined> {
    const [row] = await q.query(`SELECT ${cols("roles")} FROM roles WHERE name = $1`, [name]);
    return row ? fromRow(row) : undefined;
  }

  async list(filter: { name?: string | undefined } = {}): Promise<RoleRecord[]> {
    const rows = await this.db.query(
      `SELECT ${cols("roles")} FROM roles WHERE ($1::text IS NULL OR name = $1) ORDER BY name`,
      [filter.name ?? null],
    );
    return rows.map(fromRow);
  }

  async byNames(names: string[]): Promise<RoleRecord[]> {
    const rows = await this.db.query(
      `SELECT ${cols("roles")} FROM roles WHERE name = ANY($1) ORDER BY name`,
      [names],
    );
    return rows.map(fromRow);
  }

  async byIds(ids: Iterable<string>, q: Queryable = this.db): Promise<RoleRecord[]> {
    const rows = await q.query(`SELECT ${cols("roles")} FROM roles WHERE id = ANY($1) ORDER BY name`, [
      [...ids],
    ]);
    return rows.map(fromRow);
  }

  async create(w: Work, r: Omit<RoleRecord, "id"> & { id?: string }): Promise<RoleRecord> {
    try {
      const [row] = await w.tx.query(
        `INSERT INTO roles (id, name, description, extra) VALUES ($1, $2, $3, $4) RETURNING ${cols("roles")}`,
        [r.id ?? newId(), r.name, r.description, JSON.stringify(r.extra)],
      );
      return fromRow(row!);
    } catch (err) {
      if (isUniqueViolation(err)) throw duplicate(r.name);
      throw err;
    }
  }

  async update(
    w: Work,
    id: string,
    c: {
      name?: string | undefined;
      description?: string | undefined;
      extra?: Record<string, unknown> | undefined;
    },
  ): Promise<RoleRecord> {
    const before = await this.get(id, w.tx);
    try {
      const [row] = await w.tx.query(
        `UPDATE roles SET name = coalesce($2, name), description = coalesce($3, description), extra = extra || $4::jsonb
         WHERE id = $1 RETURNING ${cols("roles")}`,
        [id, c.name ?? null, c.description ?? null, JSON.stringify(c.extra ?? {})],
      );
      // Tokens carry role names: a renamed role's holders get new tokens.
      if (c.name !== undefined && c.name !== before.name) await this.revokeHolders(w, id);
      return fromRow(row!);
    } catch (err) {
      if (isUniqueViolation(err)) throw duplicate(c.name ?? before.name);
      throw err;
    }
  }

  async delete(w: Work, id: string): Promise<void> {
    await this.get(id, w.tx);
    await this.revokeHolders(w, id);
    await w.tx.query("DELETE FROM roles WHERE id = $1", [id]);
  }

  async implications(q: Queryable = this.db): Promise<Implication[]> {
    const rows = await q.query<{ prior_role_id: string; implied_role_id: string }>(
      "SELECT prior_role_id, implied_role_id FROM implied_roles ORDER BY prior_role_id, implied_role_id",
    );
    return rows.map((r) => ({ priorRoleId: r.prior_role_id, impliedRoleId: r.implied_role_id }));
  }

  /** The roles held through `roleIds`, implied ones included. */
  async expand(roleIds: Iterable<string>, q: Queryable = this.db): Promise<Set<string>> {
    return closure(roleIds, await this.implications(q));
  }

  async imply(w: Work, priorId: string, impliedId: string): Promise<void> {
    await this.get(priorId, w.tx);
    await this.get(impliedId, w.tx);
    if ((await this.expand([impliedId], w.tx)).has(priorId)) {
      throw invalidInput(`${impliedId} implies ${priorId}: the rule would make a cycle.`);
    }
    await w.tx.query(
      "INSERT INTO implied_roles (prior_role_id, implied_role_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
      [priorId, impliedId],
    );
  }

  async implies(priorId: string, impliedId: string): Promise<boolean> {
    const rows = await this.db.query(
      "SELECT 1 FROM implied_roles WHERE prior_role_id = $1 AND implied_role_id = $2",
      [priorId, impliedId],
    );
    return rows.length > 0;
  }

  async removeImplication(w: Work, priorId: string, impliedId: string): Promise<void> {
    const rows = await w.tx.query(
      "DELETE FROM implied_roles WHERE prior_role_id = $1 AND implied_role_id = $2 RETURNING 1",
      [priorId, impliedId],
    );
    if (rows.length === 0) throw notFound(`${priorId} does not imply ${impliedId}.`);
    await this.revokeHolders(w, priorId);
  }

  /** Revokes the tokens of every user holding `roleId` directly or through a role implying it. */
  private async revokeHolders(w: Work, roleId: string): Promise<void> {
    const rules = await this.implications(w.tx);
    const priors = [...new Set(rules.map((r) => r.priorRoleId))].filter((p) =>
      closure([p], rules).has(roleId),
    );
    const holders = await w.tx.query<{ user_id: string; target_type: string; target_id: string }>(
      "SELECT DISTINCT user_id, target_type, target_id FROM role_assignments WHERE role_id = ANY($1)",
      [[roleId, ...priors]],
    );
    for (const h of holders) w.revoke(scopeRevocation(h.user_id, h.target_type, h.target_id));
  }
}

/** The revocation of a user's tokens on one assignment target. */
export function scopeRevocation(userId: string, targetType: string, targetId: string) {
  if (targetType === "project") return { userId, projectId: targetId };
  if (targetType === "domain") return { userId, domainId: targetId };
  return { userId, system: true };
}
