// Quotas of what this service owns (networks, subnets, ports, routers, subnet pools), per project:
// the limits (Neutron's defaults, or the project's own) and what the project holds. The counting
// and the limit itself are the database's (migration 006: triggers on every insert and delete),
// so every path that makes a resource (the per-turn statements, the transactions, routers'
// ports, get-me-a-network) is held to it, and two creations racing for the last unit meet on the
// project's usage row: exactly one wins. Here: reading and setting the limits, and the refusal's
// words.
import type { UpdateQuotaRequest } from "@stratus/contracts/network/v1";
import { invalidInput, notFound, type Queryable, StratusError } from "@stratus/runtime";
import { owningProject, type Tx } from "./context.js";

/** The resources counted, by Neutron's names. */
export const QUOTA_RESOURCES = ["network", "subnet", "port", "router", "subnetpool"] as const;
export type QuotaResource = (typeof QUOTA_RESOURCES)[number];
export type QuotaSet = Record<QuotaResource, number>;

/** Neutron's other defaults, for what this service does not have (floating IPs, security groups). */
export const UNOWNED_QUOTA_DEFAULTS = { floatingIps: 50, securityGroups: 10, securityGroupRules: 100 };

/** The largest limit (Neutron's DB_INTEGER_MAX_VALUE). */
const MAX_LIMIT = 2 ** 31 - 1;

/**
 * The refusal of an insert the quota triggers stopped (SQLSTATE 23514, constraint quota_exceeded):
 * Neutron's OverQuota, a conflict ("Quota exceeded for resources: ['port']."), so that the edge
 * answers 409 as Neutron does (quota_exceeded would be Nova's 403). Undefined for any other error.
 */
export function overQuota(err: unknown): StratusError | undefined {
  const e = err as { code?: string; constraint?: string; message?: string };
  if (e?.code !== "23514" || e.constraint !== "quota_exceeded") return undefined;
  return new StratusError("conflict", String(e.message), { cause: err });
}

/** A project the caller may read the quotas of: its own, or any for an admin. */
function readableProject(tx: Tx, projectId: string): string {
  const project = projectId || tx.caller.projectId;
  if (!tx.caller.isAdmin && project !== tx.caller.projectId) {
    throw new StratusError("forbidden", `Only admin is authorized to access quotas for another project`);
  }
  if (!project) throw invalidInput("a project_id is required");
  return project;
}

function adminOnly(tx: Tx): void {
  if (!tx.caller.isAdmin) throw new StratusError("forbidden", "only an admin may change quotas");
}

/** Writes the default limits (the service's configuration, at start). */
export async function setDefaultQuotas(q: Queryable, defaults: QuotaSet): Promise<void> {
  await q.query(
    `INSERT INTO quota_defaults (resource, hard_limit) SELECT * FROM unnest($1::text[], $2::int[])
     ON CONFLICT (resource) DO UPDATE SET hard_limit = EXCLUDED.hard_limit`,
    [QUOTA_RESOURCES, QUOTA_RESOURCES.map((r) => defaults[r])],
  );
}

export async function defaultQuota(tx: Tx): Promise<QuotaSet> {
  const rows = await tx.q.query<{ resource: QuotaResource; hard_limit: number }>(
    "SELECT resource, hard_limit FROM quota_defaults",
  );
  return Object.fromEntries(rows.map((r) => [r.resource, Number(r.hard_limit)])) as QuotaSet;
}

/** The project's limits: its own where set, the defaults elsewhere. */
async function limitsOf(tx: Tx, project: string): Promise<QuotaSet> {
  const rows = await tx.q.query<{ resource: QuotaResource; hard_limit: number }>(
    `SELECT d.resource, coalesce(q.hard_limit, d.hard_limit) AS hard_limit
     FROM quota_defaults d LEFT JOIN quotas q ON q.resource = d.resource AND q.project_id = $1`,
    [project],
  );
  return Object.fromEntries(rows.map((r) => [r.resource, Number(r.hard_limit)])) as QuotaSet;
}

async function usageOf(tx: Tx, project: string): Promise<QuotaSet> {
  const rows = await tx.q.query<{ resource: QuotaResource; in_use: number }>(
    "SELECT resource, sum(in_use)::int AS in_use FROM quota_usages WHERE project_id = $1 GROUP BY resource",
    [project],
  );
  const used = Object.fromEntries(QUOTA_RESOURCES.map((r) => [r, 0])) as QuotaSet;
  for (const r of rows) used[r.resource] = Number(r.in_use);
  return used;
}

export async function getQuota(tx: Tx, projectId: string): Promise<QuotaSet> {
  return limitsOf(tx, readableProject(tx, projectId));
}

export async function listQuotas(tx: Tx): Promise<{ projectId: string; quota: QuotaSet }[]> {
  adminOnly(tx);
  const rows = await tx.q.query<{ project_id: string }>(
    "SELECT DISTINCT project_id FROM quotas ORDER BY project_id",
  );
  return Promise.all(
    rows.map(async (r) => ({ projectId: r.project_id, quota: await limitsOf(tx, r.project_id) })),
  );
}

export async function updateQuota(tx: Tx, req: UpdateQuotaRequest): Promise<QuotaSet> {
  adminOnly(tx);
  const project = owningProject(req.projectId, tx.caller);
  if (!project) throw invalidInput("a project_id is required");
  const asked = QUOTA_RESOURCES.flatMap((r) => (req[r] === undefined ? [] : [[r, req[r]!] as const]));
  // Creations counting without a limit (each in its connection's slot) finish first: the use read
  // next is all there is, and those that follow see the new limit.
  await tx.q.query(
    "SELECT 1 FROM quota_usages WHERE project_id = $1 AND resource = ANY($2::text[]) ORDER BY resource, slot FOR UPDATE",
    [project, asked.map(([r]) => r)],
  );
  const used = await usageOf(tx, project);
  for (const [resource, limit] of asked) {
    if (limit < -1 || limit > MAX_LIMIT) {
      throw invalidInput(
        `Invalid input for operation: ${limit} is not in range -1..${MAX_LIMIT} (${resource}).`,
      );
    }
    if (!req.force && limit !== -1 && used[resource] > limit) {
      throw invalidInput(
        `Quota limit ${limit} for ${resource} must be greater than or equal to already used ${used[resource]}`,
      );
    }
  }
  if (asked.length) {
    await tx.q.query(
      `INSERT INTO quotas (project_id, resource, hard_limit) SELECT $1, r, l FROM unnest($2::text[], $3::int[]) AS x(r, l)
       ON CONFLICT (project_id, resource) DO UPDATE SET hard_limit = EXCLUDED.hard_limit`,
      [project, asked.map(([r]) => r), asked.map(([, l]) => l)],
    );
  }
  return limitsOf(tx, project);
}

export async function deleteQuota(tx: Tx, projectId: string): Promise<void> {
  adminOnly(tx);
  const gone = await tx.q.query("DELETE FROM quotas WHERE project_id = $1 RETURNING resource", [projectId]);
  if (!gone.length) throw notFound(`Quota for project ${projectId} could not be found.`);
}

export async function quotaDetails(
  tx: Tx,
  projectId: string,
): Promise<Record<QuotaResource, { used: number; limit: number; reserved: number }>> {
  const project = readableProject(tx, projectId);
  const [limits, used] = await Promise.all([limitsOf(tx, project), usageOf(tx, project)]);
  return Object.fromEntries(
    QUOTA_RESOURCES.map((r) => [r, { used: used[r], limit: limits[r], reserved: 0 }]),
  ) as Record<QuotaResource, { used: number; limit: number; reserved: number }>;
}

/** GetQuotas (the compute API's limits): the project's limits and use, with Neutron's other defaults. */
export async function quotas(tx: Tx, projectId: string) {
  const project = owningProject(projectId, tx.caller);
  const [limits, used] = await Promise.all([limitsOf(tx, project), usageOf(tx, project)]);
  return {
    ...UNOWNED_QUOTA_DEFAULTS,
    networks: limits.network,
    subnets: limits.subnet,
    ports: limits.port,
    routers: limits.router,
    floatingIpsUsed: 0,
    securityGroupsUsed: 0,
    securityGroupRulesUsed: 0,
    portsUsed: used.port,
    networksUsed: used.network,
    subnetsUsed: used.subnet,
    routersUsed: used.router,
  };
}
