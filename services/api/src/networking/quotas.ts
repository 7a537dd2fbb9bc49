// Quotas of the Networking API (the quotas and quota_details extensions) for what the
// network-adapter owns: network, subnet, port, router, subnetpool. The limits and their
// enforcement are the adapter's (counted by its database on every insert, so every path that
// makes a resource is held to them); this file translates. Reading another project's quotas and
// every change are admin-only (the adapter refuses others).
import type { MessageShape } from "@bufbuild/protobuf";
import type { QuotaDetailSchema, QuotaSetSchema } from "@stratus/contracts/network/v1";
import type { NetworkDeps } from "./deps.js";
import { badRequest } from "./faults.js";
import { type Attrs, checkAttrs } from "./resource.js";
import type { NetRequest, NetRouter } from "./router.js";

type QuotaSet = MessageShape<typeof QuotaSetSchema>;
type QuotaDetail = MessageShape<typeof QuotaDetailSchema>;

/** The resources counted, by Neutron's names (also the QuotaSet's fields). */
const RESOURCES = ["network", "subnet", "port", "router", "subnetpool"] as const;

const QUOTA_ATTRS: Attrs = Object.fromEntries(RESOURCES.map((r) => [r, { type: "int", put: true }]));
/** Neutron's quota body also takes force (a limit below what is used). */
QUOTA_ATTRS.force = { type: "bool", put: true };

function quotaView(q: QuotaSet | undefined): Record<string, number> {
  return Object.fromEntries(RESOURCES.map((r) => [r, q?.[r] ?? 0]));
}

function detailView(d: QuotaDetail | undefined) {
  return { used: d?.used ?? 0, limit: d?.limit ?? 0, reserved: d?.reserved ?? 0 };
}

/** The {"quota": {...}} body of a PUT: known resources, each an integer from -1 up. */
function quotaBody(req: NetRequest): Record<string, unknown> {
  const body = req.body;
  if (body === null || typeof body !== "object" || Array.isArray(body) || !("quota" in body)) {
    throw badRequest("Unable to find 'quota' in request body");
  }
  const inner = (body as { quota: unknown }).quota;
  if (inner === null || typeof inner !== "object" || Array.isArray(inner))
    throw badRequest("Body contains invalid data");
  const a = checkAttrs(inner as Record<string, unknown>, QUOTA_ATTRS, "put");
  for (const r of RESOURCES) {
    const v = a[r] as number | undefined;
    if (v !== undefined && v < -1) {
      throw badRequest(`Invalid input for ${r}. Reason: '${v}' is too small - must be at least '-1'.`);
    }
  }
  return a;
}

export function quotaRoutes(router: NetRouter, deps: NetworkDeps): void {
  // The projects with limits of their own (admin).
  router.add("GET", "/quotas", async () => {
    const { quotas } = await deps.network.listQuotas({});
    return {
      status: 200,
      body: {
        quotas: quotas.map((q) => ({
          ...quotaView(q.quota),
          project_id: q.projectId,
          tenant_id: q.projectId,
        })),
      },
    };
  });
  // The caller's own project (Neutron's quotas/tenant and quotas/project).
  for (const name of ["tenant", "project"]) {
    router.add("GET", `/quotas/${name}`, (req) => ({
      status: 200,
      body: { [name]: { [`${name}_id`]: req.caller.projectId } },
    }));
  }
  router.add("GET", "/quotas/:project", async (req) => {
    const { quota } = await deps.network.getQuota({ projectId: req.params.project! });
    return { status: 200, body: { quota: quotaView(quota) } };
  });
  router.add("GET", "/quotas/:project/default", async (req) => {
    // As Neutron, a project the caller may not read is refused here too.
    await deps.network.getQuota({ projectId: req.params.project! });
    const { quota } = await deps.network.getDefaultQuota({});
    return { status: 200, body: { quota: quotaView(quota) } };
  });
  router.add("GET", "/quotas/:project/details", async (req) => {
    const d = await deps.network.getQuotaDetails({ projectId: req.params.project! });
    return { status: 200, body: { quota: Object.fromEntries(RESOURCES.map((r) => [r, detailView(d[r])])) } };
  });
  router.add("PUT", "/quotas/:project", async (req) => {
    const a = quotaBody(req);
    const { quota } = await deps.network.updateQuota({
      projectId: req.params.project!,
      ...Object.fromEntries(RESOURCES.flatMap((r) => (a[r] === undefined ? [] : [[r, a[r] as number]]))),
      force: a.force === true,
    });
    return { status: 200, body: { quota: quotaView(quota) } };
  });
  router.add("DELETE", "/quotas/:project", async (req) => {
    await deps.network.deleteQuota({ projectId: req.params.project! });
    return { status: 204 };
  });
}
