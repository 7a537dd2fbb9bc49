// Domains: containers of users and projects. A domain must be disabled before it is deleted; its
// projects, users and their assignments go with it.
import { conflict, notFound, type Queryable, StratusError } from "@stratus/runtime";
import { cols } from "../columns.js";
import { newId } from "../identifiers.js";
import type { Work } from "../tokens/revocation-log.js";
import { type ContainerChanges, updateContainer } from "./containers.js";
import { isUniqueViolation } from "./sql-errors.js";

export const DEFAULT_DOMAIN_ID = "default";

export interface DomainRecord {
  id: string;
  name: string;
  description: string;
  enabled: boolean;
  tags: string[];
  extra: Record<string, unknown>;
}

export type DomainChanges = ContainerChanges;

function fromRow(r: Record<string, unknown>): DomainRecord {
  return {
    id: r.id as string,
    name: r.name as string,
    description: r.description as string,
    enabled: r.enabled as boolean,
    tags: (r.tags as string[]) ?? [],
    extra: (r.extra as Record<string, unknown>) ?? {},
  };
}

const duplicate = (name: string) =>
  conflict(`Conflict occurred attempting to store domain - Duplicate entry found with name ${name}.`);

export class Domains {
  constructor(private readonly db: Queryable) {}

  async find(id: string, q: Queryable = this.db): Promise<DomainRecord | undefined> {
    const [row] = await q.query(`SELECT ${cols("domains")} FROM domains WHERE id = $1`, [id]);
    return row ? fromRow(row) : undefined;
  }

  async get(id: string, q: Queryable = this.db): Promise<DomainRecord> {
    const d = await this.find(id, q);
    if (!d) throw notFound(`Could not find domain: ${id}.`);
    return d;
  }

  async findByName(name: string): Promise<DomainRecord | undefined> {
    const [row] = await this.db.query(`SELECT ${cols("domains")} FROM domains WHERE name = $1`, [name]);
    return row ? fromRow(row) : undefined;
  }

  async list(
    filter: { name?: string | undefined; enabled?: boolean | undefined } = {},
  ): Promise<DomainRecord[]> {
    const rows = await this.db.query(
      `SELECT ${cols("domains")} FROM domains WHERE ($1::text IS NULL OR name = $1) AND ($2::boolean IS NULL OR enabled = $2)
       ORDER BY name`,
      [filter.name ?? null, filter.enabled ?? null],
    );
    return rows.map(fromRow);
  }

  async names(ids: string[]): Promise<Map<string, string>> {
    const rows = await this.db.query<{ id: string; name: string }>(
      "SELECT id, name FROM domains WHERE id = ANY($1)",
      [ids],
    );
    return new Map(rows.map((r) => [r.id, r.name]));
  }

  async create(w: Work, d: Omit<DomainRecord, "id"> & { id?: string }): Promise<DomainRecord> {
    try {
      const [row] = await w.tx.query(
        `INSERT INTO domains (id, name, description, enabled, tags, extra) VALUES ($1, $2, $3, $4, $5, $6)
         RETURNING ${cols("domains")}`,
        [d.id ?? newId(), d.name, d.description, d.enabled, d.tags, JSON.stringify(d.extra)],
      );
      return fromRow(row!);
    } catch (err) {
      if (isUniqueViolation(err)) throw duplicate(d.name);
      throw err;
    }
  }

  async update(w: Work, id: string, c: DomainChanges): Promise<DomainRecord> {
    const before = await this.get(id, w.tx);
    const row = await updateContainer(w.tx, "domains", id, c, () => duplicate(c.name ?? before.name));
    if (before.enabled && c.enabled === false) w.revoke({ domainId: id });
    return fromRow(row);
  }

  async delete(w: Work, id: string): Promise<void> {
    const d = await this.get(id, w.tx);
    if (d.enabled) {
      throw new StratusError("forbidden", "Cannot delete a domain that is enabled, please disable it first.");
    }
    await w.tx.query(
      `DELETE FROM role_assignments WHERE (target_type = 'domain' AND target_id = $1)
         OR (target_type = 'project' AND target_id IN (SELECT id FROM projects WHERE domain_id = $1))`,
      [id],
    );
    await w.tx.query("DELETE FROM domains WHERE id = $1", [id]);
    w.revoke({ domainId: id });
  }
}
