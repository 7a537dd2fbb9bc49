// Keystone's token body: who (user and domain), how (methods, audit ids), until when, on what
// scope with which roles, and the catalog unless ?nocatalog or unscoped.
import type { AuthenticatedIdentity } from "@stratus/runtime/auth";
import type { Directory } from "../directory/directory.js";
import type { RoleRecord } from "../directory/roles.js";
import { isoTime } from "../identifiers.js";
import { catalogView } from "./views.js";

export async function tokenBody(
  dir: Directory,
  t: AuthenticatedIdentity,
  options: {
    catalog: boolean;
    /** The roles behind t.roles when known; otherwise looked up by name. */
    roles?: RoleRecord[] | undefined;
  },
) {
  const domainIds = [t.userDomainId, t.projectDomainId, t.domainId].filter(Boolean);
  const names = await dir.domains.names(domainIds);
  const domain = (id: string) => ({ id, name: names.get(id) ?? "" });
  const roles = options.roles ?? (await dir.roles.byNames(t.roles));
  const token: Record<string, unknown> = {
    methods: t.methods,
    user: { domain: domain(t.userDomainId), id: t.userId, name: t.userName, password_expires_at: null },
    audit_ids: t.auditIds,
    expires_at: isoTime(t.expiresAt),
    issued_at: isoTime(t.issuedAt),
  };
  const scoped = Boolean(t.projectId || t.domainId || t.system);
  if (t.projectId) {
    token.project = { domain: domain(t.projectDomainId), id: t.projectId, name: t.projectName };
    token.is_domain = false;
  }
  if (t.domainId) token.domain = domain(t.domainId);
  if (t.system) token.system = { all: true };
  if (scoped) token.roles = roles.map((r) => ({ id: r.id, name: r.name }));
  if (t.applicationCredentialId) {
    const c = await dir.applicationCredentials.find(t.userId, t.applicationCredentialId);
    token.application_credential = {
      id: t.applicationCredentialId,
      name: c?.name ?? "",
      restricted: !(c?.unrestricted ?? false),
    };
  }
  if (scoped && options.catalog) token.catalog = catalogView(await dir.catalog.entries());
  return { token };
}
