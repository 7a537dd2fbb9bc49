// `npm run audit [-- --fix] [-- --json]`: the mesh audit (docs/audit.md) through the conductor's
// AuditMesh RPC, as the cloud's admin user (IDENTITY_URL, the password in ADMIN_PASSWORD_FILE,
// default .stratus/identity/admin.password as `npm start` keeps it; CONDUCTOR_URL). Prints each
// finding with what would fix it; with --fix the conductor repairs what is safe to repair and each
// repair is printed (and logged by the conductor). Exit status: 0 when nothing is left to fix,
// 1 when a finding remains (not repairable, or its repair failed), 2 when the audit could not run.
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { ConductorService } from "@stratus/contracts/compute/v1";
import { createLogger, serviceClient } from "@stratus/runtime";
import { loginAsUser, readPasswordFile } from "@stratus/runtime/auth";

const args = new Set(process.argv.slice(2));
const unknown = [...args].filter((a) => a !== "--fix" && a !== "--json");
if (unknown.length) {
  console.error(`audit: unknown argument ${unknown.join(" ")} (usage: npm run audit [-- --fix] [--json])`);
  process.exit(2);
}
const fix = args.has("--fix");

try {
  await loginAsUser({
    identityUrl: process.env.IDENTITY_URL ?? "http://127.0.0.1:5000",
    user: process.env.ADMIN_USER ?? "admin",
    password: readPasswordFile(process.env.ADMIN_PASSWORD_FILE ?? ".stratus/identity/admin.password"),
    project: process.env.ADMIN_PROJECT ?? "admin",
    logger: createLogger("audit", "warn"),
  });
  const conductor = serviceClient(ConductorService, process.env.CONDUCTOR_URL ?? "http://127.0.0.1:9101");
  const res = await conductor.auditMesh({ fix });
  const repaired = new Set(res.repairs.filter((r) => r.ok).map((r) => `${r.kind} ${r.subject}`));
  const left = res.findings.filter((f) => !repaired.has(`${f.kind} ${f.subject}`));
  if (args.has("--json")) {
    console.log(
      JSON.stringify(
        {
          checkedAt: res.checkedAt ? timestampDate(res.checkedAt).toISOString() : undefined,
          findings: res.findings.map((f) => ({ ...f, $typeName: undefined })),
          repairs: res.repairs.map((r) => ({ ...r, $typeName: undefined })),
        },
        null,
        2,
      ),
    );
  } else {
    for (const f of res.findings) {
      console.log(
        `${f.kind} ${f.subject}\n  ${f.detail}\n  fix: ${f.fix}${f.repairable ? " (--fix does it)" : ""}`,
      );
    }
    for (const r of res.repairs) {
      console.log(`repaired: ${r.action} ${r.subject} (${r.kind})${r.ok ? "" : ` FAILED: ${r.error}`}`);
    }
    console.log(
      `${res.findings.length} finding(s)${fix ? `, ${repaired.size} repaired` : ""}, ${left.length} left to fix`,
    );
  }
  process.exit(left.length ? 1 : 0);
} catch (err) {
  console.error(`audit: ${(err as Error).message}`);
  process.exit(2);
}
