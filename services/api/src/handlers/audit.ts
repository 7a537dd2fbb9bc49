// The mesh audit on the compute edge (a Stratus extension, docs/audit.md): GET reports each
// orphan, mismatch or duplicate across the conductor, placement and the network-adapter;
// POST {"audit": {"fix": true}} also repairs what is safe to repair. Admin only; the conductor's
// AuditMesh does the work (its checks are defined once, services/conductor/src/audit/checks.ts).
import type { MessageShape } from "@bufbuild/protobuf";
import type { AuditMeshResponseSchema } from "@stratus/contracts/compute/v1";
import { z } from "zod";
import type { ApiDeps } from "../deps.js";
import type { Router } from "../http/router.js";
import { invalid, isoTime, requireAdmin, validate } from "./common.js";

const POLICY = "stratus:audit";
const body = z.strictObject({ audit: z.strictObject({ fix: z.boolean().optional() }) });

function view(res: MessageShape<typeof AuditMeshResponseSchema>) {
  return {
    audit: {
      checked_at: isoTime(res.checkedAt),
      findings: res.findings.map((f) => ({
        kind: f.kind,
        subject: f.subject,
        detail: f.detail,
        fix: f.fix,
        repairable: f.repairable,
      })),
      repairs: res.repairs.map((r) => ({
        kind: r.kind,
        subject: r.subject,
        action: r.action,
        ok: r.ok,
        ...(r.error ? { error: r.error } : {}),
      })),
    },
  };
}

export function auditRoutes(router: Router, deps: ApiDeps): void {
  router.add("GET", "/os-stratus-audit", async (req) => {
    requireAdmin(req.caller, POLICY);
    return { status: 200, body: view(await deps.conductor.auditMesh({ fix: false })) };
  });
  router.add("POST", "/os-stratus-audit", async (req) => {
    requireAdmin(req.caller, POLICY);
    if (req.body === undefined) throw invalid("The request body is missing.");
    const { audit } = validate(body, req.body);
    return { status: 200, body: view(await deps.conductor.auditMesh({ fix: audit.fix === true })) };
  });
}
