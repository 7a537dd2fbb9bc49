// A project's quota limits (per-project overrides of the defaults) and what its live servers use.
import type { Database, Queryable } from "@stratus/runtime";

export interface Limits {
  instances: number;
  cores: number;
  ram: number;
}

export class Quotas {
  constructor(
    private readonly db: Database,
    private readonly defaults: Limits,
  ) {}

  limitsOf(projectId: string): Promise<Limits> {
    return this.limits(this.db, projectId);
  }

  usageOf(projectId: string): Promise<Limits> {
    return this.usage(this.db, projectId);
  }

  async limits(q: Queryable, projectId: string): Promise<Limits> {
    const rows = await q.query<{ resource: string; hard_limit: number }>(
      "SELECT resource, hard_limit FROM quotas WHERE project_id = $1",
      [projectId],
    );
    const l = { ...this.defaults };
    for (const r of rows) if (r.resource in l) l[r.resource as keyof Limits] = r.hard_limit;
    return l;
  }

  /** Live servers of the project and what they hold (kept by triggers, migration 003). */
  async usage(q: Queryable, projectId: string): Promise<Limits> {
    const rows = await q.query<{ instances: string; cores: string; ram: string }>(
      "SELECT instances, cores, ram FROM project_usage WHERE project_id = $1",
      [projectId],
    );
    const r = rows[0];
    return { instances: Number(r?.instances ?? 0), cores: Number(r?.cores ?? 0), ram: Number(r?.ram ?? 0) };
  }
}
