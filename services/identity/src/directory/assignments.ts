// Role assignments: a user's roles on a project, a domain or the system. Removing one revokes the
// user's tokens on that target.
import { notFound, type Queryable } from "@stratus/runtime";
import type { Work } from "../tokens/revocation-log.js";
import type { Domains } from "./domains.js";
import type { Projects } from "./projects.js";
import { type RoleRecord, type Roles, scopeRevocation } from "./roles.js";
import type { Users } from "./users.js";

export type Target = { type: "project"; id: string } | { type: "domain"; id: string } | { type: "system" };

export interface Assignment {
  userId: string;
  target: Target;
  roleId: string;
  /** Set in an effective listing for a role held through this prior role. */
  priorRoleId?: string;
}

export interface AssignmentFilter {
  userId?: string | undefined;
  projectId?: string | undefined;
  domainId?: string | undefined;
  system?: boolean | undefined;
  roleId?: string | undefined;
}

const targetId = (t: Target) => (t.type === "system" ? "all" : t.id);

function targetOf(type: string, id: string): Target {
  return type === "system" ? { type: "system" } : { type: type as "project" | "domain", id };
}

export class Assignments {
  constructor(
    private readonly db: Queryable,
    private readonly deps: { users: Users; projects: Projects; domains: Domains; roles: Roles },
  ) {}

  async grant(w: Work, userId: string, target: Target, roleId: string): Promise<void> {
    await this.checkParties(userId, target, roleId, w.tx);
    await w.tx.query(
      `INSERT INTO role_assignments (user_id, target_type, target_id, role_id) VALUES ($1, $2, $3, $4)
       ON CONFLICT DO NOTHING`,
      [userId, target.type, targetId(target), roleId],
    );
  }

  async has(userId: string, target: Target, roleId: string): Promise<boolean> {
    await this.checkParties(userId, target, roleId, this.db);
    const rows = await this.db.query(
      "SELECT 1 FROM role_assignments WHERE user_id = $1 AND target_type = $2 AND target_id = $3 AND role_id = $4",
      [userId, target.type, targetId(target), roleId],
    );
    return rows.length > 0;
  }

  async revoke(w: Work, userId: string, target: Target, roleId: string): Promise<void> {
    await this.checkParties(userId, target, roleId, w.tx);
    const rows = await w.tx.query(
      `DELETE FROM role_assignments WHERE user_id = $1 AND target_type = $2 AND target_id = $3 AND role_id = $4
       RETURNING 1`,
      [userId, target.type, targetId(target), roleId],
    );
    if (rows.length === 0) {
      throw notFound(`Could not find role assignment with role: ${roleId}, user or group: ${userId}.`);
    }
    w.revoke(scopeRevocation(userId, target.type, targetId(target)));
  }

  /** The roles a user holds on a target, implied ones included. */
  async effectiveRoles(userId: string, target: Target): Promise<RoleRecord[]> {
    const rows = await this.db.query<{ role_id: string }>(
      "SELECT role_id FROM role_assignments WHERE user_id = $1 AND target_type = $2 AND target_id = $3",
      [userId, target.type, targetId(target)],
    );
    if (rows.length === 0) return [];
    return this.deps.roles.byIds(await this.deps.roles.expand(rows.map((r) => r.role_id)));
  }

  /** Ids of the targets of a type on which the user holds any role. */
  async targetsOf(userId: string, type: "project" | "domain" | "system"): Promise<string[]> {
    const rows = await this.db.query<{ target_id: string }>(
      "SELECT DISTINCT target_id FROM role_assignments WHERE user_id = $1 AND target_type = $2 ORDER BY target_id",
      [userId, type],
    );
    return rows.map((r) => r.target_id);
  }

  /** Direct assignments, or with `effective` each implied role as an assignment of its own. */
  async list(filter: AssignmentFilter, effective: boolean): Promise<Assignment[]> {
    const type = filter.projectId ? "project" : filter.domainId ? "domain" : filter.system ? "system" : null;
    const id = filter.projectId ?? filter.domainId ?? (filter.system ? "all" : null);
    const rows = await this.db.query<{
      user_id: string;
      target_type: string;
      target_id: string;
      role_id: string;
    }>(
      `SELECT user_id, target_type, target_id, role_id FROM role_assignments
       WHERE ($1::text IS NULL OR user_id = $1) AND ($2::text IS NULL OR target_type = $2)
         AND ($3::text IS NULL OR target_id = $3)
       ORDER BY user_id, target_type, target_id, role_id`,
      [filter.userId ?? null, type, id],
    );
    let out: Assignment[] = rows.map((r) => ({
      userId: r.user_id,
      target: targetOf(r.target_type, r.target_id),
      roleId: r.role_id,
    }));
    if (effective) {
      const rules = await this.deps.roles.implications();
      const expanded: Assignment[] = [];
      const seen = new Set<string>();
      const push = (a: Assignment) => {
        const key = `${a.userId}/${a.target.type}/${targetId(a.target)}/${a.roleId}`;
        if (seen.has(key)) return;
        seen.add(key);
        expanded.push(a);
      };
      for (const a of out) push(a);
      for (const a of out) {
        const stack = [a.roleId];
        const visited = new Set<string>();
        while (stack.length) {
          const prior = stack.pop()!;
          if (visited.has(prior)) continue;
          visited.add(prior);
          for (const rule of rules.filter((r) => r.priorRoleId === prior)) {
            push({ ...a, roleId: rule.impliedRoleId, priorRoleId: prior });
            stack.push(rule.impliedRoleId);
          }
        }
      }
      out = expanded;
    }
    return filter.roleId ? out.filter((a) => a.roleId === filter.roleId) : out;
  }

  private async checkParties(userId: string, target: Target, roleId: string, q: Queryable): Promise<void> {
    await this.deps.users.get(userId, q);
    await this.deps.roles.get(roleId, q);
    if (target.type === "project") await this.deps.projects.get(target.id, q);
    if (target.type === "domain") await this.deps.domains.get(target.id, q);
  }
}
