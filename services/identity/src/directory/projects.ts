// Projects: each in one domain (its parent, as Keystone's projects directly under a domain).
// Disabling or deleting a project revokes the tokens scoped to it.
import { conflict, invalidInput, notFound, type Queryable } from "@stratus/runtime";
import { cols } from "../columns.js";
import { newId } from "../identifiers.js";
import type { Work } from "../tokens/revocation-log.js";
import { type ContainerChanges, updateContainer } from "./containers.js";
import { isForeignKeyViolation, isUniqueViolation } from "./sql-errors.js";

export interface ProjectRecord {
  id: string;
  name: string;
  domainId: string;
  description: string;
  enabled: boolean;
  tags: string[];
  extra: Record<string, unknown>;
}

export type ProjectChanges = ContainerChanges;

export interface ProjectFilter {
  name?: string | undefined;
  domainId?: string | undefined;
  enabled?: boolean | undefined;
  /** Only these ids. */
  ids?: string[] | undefined;
}

function fromRow(r: Record<string, unknown>): ProjectRecord {
  return {
    id: r.id as string,
    name: r.name as string,
    domainId: r.domain_id as string,
    description: r.description as string,
    enabled: r.enabled as boolean,
    tags: (r.tags as string[]) ?? [],
    extra: (r.extra as Record<string, unknown>) ?? {},
  };
}

const duplicate = (name: string, domainId: string) =>
  conflict(
    `Conflict occurred attempting to store project - it is not permitted to have two projects with the same name in the same domain : ${name}, ${domainId}.`,
  );

export class Projects {
  constructor(private readonly db: Queryable) {}

  async find(id: string, q: Queryable = this.db): Promise<ProjectRecord | undefined> {
    const [row] = await q.query(`SELECT ${cols("projects")} FROM projects WHERE id = $1`, [id]);
    return row ? fromRow(row) : undefined;
  }

  async get(id: string, q: Queryable = this.db): Promise<ProjectRecord> {
    const p = await this.find(id, q);
    if (!p) throw notFound(`Could not find project: ${id}.`);
    return p;
  }

  async findByName(name: string, domainId: string): Promise<ProjectRecord | undefined> {
    const [row] = await this.db.query(
      `SELECT ${cols("projects")} FROM projects WHERE name = $1 AND domain_id = $2`,
      [name, domainId],
    );
    return row ? fromRow(row) : undefined;
  }

  async list(filter: ProjectFilter = {}): Promise<ProjectRecord[]> {
    const rows = await this.db.query(
      `SELECT ${cols("projects")} FROM projects
       WHERE ($1::text IS NULL OR name = $1) AND ($2::text IS NULL OR domain_id = $2)
         AND ($3::boolean IS NULL OR enabled = $3) AND ($4::text[] IS NULL OR id = ANY($4))
       ORDER BY name, id`,
      [filter.name ?? null, filter.domainId ?? null, filter.enabled ?? null, filter.ids ?? null],
    );
    return rows.map(fromRow);
  }

  async create(w: Work, p: Omit<ProjectRecord, "id"> & { id?: string }): Promise<ProjectRecord> {
    try {
      const [row] = await w.tx.query(
        `INSERT INTO projects (id, name, domain_id, description, enabled, tags, extra)
         VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING ${cols("projects")}`,
        [p.id ?? newId(), p.name, p.domainId, p.description, p.enabled, p.tags, JSON.stringify(p.extra)],
      );
      return fromRow(row!);
    } catch (err) {
      if (isUniqueViolation(err)) throw duplicate(p.name, p.domainId);
      if (isForeignKeyViolation(err)) throw invalidInput(`Could not find domain: ${p.domainId}.`);
      throw err;
    }
  }

  async update(w: Work, id: string, c: ProjectChanges): Promise<ProjectRecord> {
    const before = await this.get(id, w.tx);
    const row = await updateContainer(w.tx, "projects", id, c, () =>
      duplicate(c.name ?? before.name, before.domainId),
    );
    if (before.enabled && c.enabled === false) w.revoke({ projectId: id });
    return fromRow(row);
  }

  async delete(w: Work, id: string): Promise<void> {
    await this.get(id, w.tx);
    await w.tx.query("DELETE FROM role_assignments WHERE target_type = 'project' AND target_id = $1", [id]);
    await w.tx.query("UPDATE users SET default_project_id = NULL WHERE default_project_id = $1", [id]);
    await w.tx.query("DELETE FROM projects WHERE id = $1", [id]);
    w.revoke({ projectId: id });
  }
}
