// The JSON Keystone answers with for each kind of object, with its links.
import type { ApplicationCredentialRecord } from "../directory/application-credentials.js";
import type { Assignment } from "../directory/assignments.js";
import type { CatalogEntry, EndpointRecord, RegionRecord, ServiceRecord } from "../directory/catalog.js";
import type { DomainRecord } from "../directory/domains.js";
import type { ProjectRecord } from "../directory/projects.js";
import type { RoleRecord } from "../directory/roles.js";
import type { UserRecord } from "../directory/users.js";
import { isoTime } from "../identifiers.js";

const self = (base: string, path: string) => ({ self: `${base}/v3/${path}` });

/** A collection answer: {"<key>": [...], "links": {self, previous, next}} (one page: no paging). */
export function collection(base: string, key: string, path: string, items: unknown[]) {
  return { [key]: items, links: { self: `${base}/v3/${path}`, previous: null, next: null } };
}

export function userView(base: string, u: UserRecord) {
  return {
    ...u.extra,
    id: u.id,
    name: u.name,
    domain_id: u.domainId,
    enabled: u.enabled,
    ...(u.defaultProjectId ? { default_project_id: u.defaultProjectId } : {}),
    password_expires_at: null,
    options: {},
    links: self(base, `users/${u.id}`),
  };
}

export function projectView(base: string, p: ProjectRecord) {
  return {
    ...p.extra,
    id: p.id,
    name: p.name,
    domain_id: p.domainId,
    description: p.description,
    enabled: p.enabled,
    parent_id: p.domainId,
    is_domain: false,
    tags: p.tags,
    options: {},
    links: self(base, `projects/${p.id}`),
  };
}

export function domainView(base: string, d: DomainRecord) {
  return {
    ...d.extra,
    id: d.id,
    name: d.name,
    description: d.description,
    enabled: d.enabled,
    tags: d.tags,
    options: {},
    links: self(base, `domains/${d.id}`),
  };
}

export function roleView(base: string, r: RoleRecord) {
  return {
    ...r.extra,
    id: r.id,
    name: r.name,
    domain_id: null,
    description: r.description,
    options: {},
    links: self(base, `roles/${r.id}`),
  };
}

export function roleRef(base: string, r: RoleRecord) {
  return { id: r.id, name: r.name, links: self(base, `roles/${r.id}`) };
}

export function applicationCredentialView(base: string, c: ApplicationCredentialRecord, roles: RoleRecord[]) {
  return {
    id: c.id,
    name: c.name,
    description: c.description,
    user_id: c.userId,
    project_id: c.projectId,
    system: null,
    roles: roles.map((r) => ({ id: r.id, name: r.name, domain_id: null })),
    expires_at: c.expiresAt ? isoTime(c.expiresAt) : null,
    unrestricted: c.unrestricted,
    access_rules: [],
    links: self(base, `users/${c.userId}/application_credentials/${c.id}`),
  };
}

export function regionView(base: string, r: RegionRecord) {
  return {
    id: r.id,
    description: r.description,
    parent_region_id: r.parentRegionId ?? null,
    links: self(base, `regions/${r.id}`),
  };
}

export function serviceView(base: string, s: ServiceRecord) {
  return {
    ...s.extra,
    id: s.id,
    type: s.type,
    name: s.name,
    description: s.description,
    enabled: s.enabled,
    links: self(base, `services/${s.id}`),
  };
}

export function endpointView(base: string, e: EndpointRecord) {
  return {
    id: e.id,
    interface: e.interface,
    region: e.regionId ?? null,
    region_id: e.regionId ?? null,
    service_id: e.serviceId,
    url: e.url,
    enabled: e.enabled,
    links: self(base, `endpoints/${e.id}`),
  };
}

export function catalogView(entries: CatalogEntry[]) {
  return entries.map((e) => ({
    endpoints: e.endpoints.map((ep) => ({
      id: ep.id,
      interface: ep.interface,
      region: ep.regionId ?? null,
      region_id: ep.regionId ?? null,
      url: ep.url,
    })),
    id: e.service.id,
    type: e.service.type,
    name: e.service.name,
  }));
}

/** Names for include_names, looked up once per listing. */
export interface AssignmentNames {
  users: Map<string, { name: string; domainId: string }>;
  projects: Map<string, { name: string; domainId: string }>;
  domains: Map<string, string>;
  roles: Map<string, string>;
}

export function assignmentView(base: string, a: Assignment, names: AssignmentNames | undefined) {
  const domainRef = (id: string) => ({ id, ...(names ? { name: names.domains.get(id) ?? "" } : {}) });
  const user = names?.users.get(a.userId);
  let scope: Record<string, unknown>;
  let path: string;
  if (a.target.type === "project") {
    const p = names?.projects.get(a.target.id);
    scope = { project: { id: a.target.id, ...(p ? { name: p.name, domain: domainRef(p.domainId) } : {}) } };
    path = `projects/${a.target.id}`;
  } else if (a.target.type === "domain") {
    scope = { domain: domainRef(a.target.id) };
    path = `domains/${a.target.id}`;
  } else {
    scope = { system: { all: true } };
    path = "system";
  }
  return {
    role: { id: a.roleId, ...(names ? { name: names.roles.get(a.roleId) ?? "" } : {}) },
    scope,
    user: { id: a.userId, ...(user ? { name: user.name, domain: domainRef(user.domainId) } : {}) },
    links: {
      assignment: `${base}/v3/${path}/users/${a.userId}/roles/${a.priorRoleId ?? a.roleId}`,
      ...(a.priorRoleId ? { prior_role: `${base}/v3/roles/${a.priorRoleId}` } : {}),
    },
  };
}
