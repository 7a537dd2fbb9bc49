// /v3/projects and /v3/domains: the containers. A domain must be disabled before it is deleted.
import { z } from "zod";
import { callerDomain, enforce } from "../../auth/policy.js";
import { description, extras, name, parseBody, queryBool, queryText, tags, text } from "../input.js";
import type { KeystoneRouter } from "../keystone-server.js";
import { collection, domainView, projectView } from "../views.js";
import type { RouteDeps } from "./deps.js";
import { domainListing } from "./domain-listing.js";

const PROJECT_FIELDS = [
  "id",
  "name",
  "domain_id",
  "description",
  "enabled",
  "tags",
  "parent_id",
  "is_domain",
  "options",
] as const;
const DOMAIN_FIELDS = [
  "id",
  "name",
  "description",
  "enabled",
  "tags",
  "options",
  "explicit_domain_id",
] as const;

const projectCreate = z.looseObject({
  name,
  domain_id: text(64).nullish(),
  parent_id: text(64).nullish(),
  description: description.nullish(),
  enabled: z.boolean().optional(),
  is_domain: z.literal(false).optional(),
  tags: tags.optional(),
});
const projectUpdate = z.looseObject({
  name: name.optional(),
  description: description.nullish(),
  enabled: z.boolean().optional(),
  tags: tags.optional(),
});
const domainCreate = z.looseObject({
  name,
  description: description.nullish(),
  enabled: z.boolean().optional(),
  tags: tags.optional(),
});
const domainUpdate = domainCreate.partial();

export function projectRoutes(router: KeystoneRouter, deps: RouteDeps): void {
  const { dir } = deps;

  router.route("GET", "projects", async (req, caller) => {
    const projects = await dir.projects.list(domainListing(req, caller, "identity:list_projects"));
    return {
      status: 200,
      body: collection(
        req.baseUrl,
        "projects",
        "projects",
        projects.map((p) => projectView(req.baseUrl, p)),
      ),
    };
  });

  router.route("POST", "projects", async (req, caller) => {
    const p = parseBody(projectCreate, req.body, "project");
    // Projects sit directly under their domain: a parent_id, when given, must be that domain.
    const domainId = p.domain_id ?? p.parent_id ?? callerDomain(caller);
    enforce("identity:create_project", caller, { domainId });
    await dir.domains.get(domainId);
    const project = await dir.change((w) =>
      dir.projects.create(w, {
        name: p.name,
        domainId,
        description: p.description ?? "",
        enabled: p.enabled ?? true,
        tags: p.tags ?? [],
        extra: extras(p, PROJECT_FIELDS),
      }),
    );
    return { status: 201, body: { project: projectView(req.baseUrl, project) } };
  });

  router.route("GET", "projects/:id", async (req, caller) => {
    const project = await dir.projects.get(req.params.id!);
    enforce("identity:get_project", caller, { projectId: project.id, domainId: project.domainId });
    return { status: 200, body: { project: projectView(req.baseUrl, project) } };
  });

  router.route("PATCH", "projects/:id", async (req, caller) => {
    const p = parseBody(projectUpdate, req.body, "project");
    const before = await dir.projects.get(req.params.id!);
    enforce("identity:update_project", caller, { projectId: before.id, domainId: before.domainId });
    const project = await dir.change((w) =>
      dir.projects.update(w, before.id, {
        name: p.name,
        description: p.description ?? undefined,
        enabled: p.enabled,
        tags: p.tags,
        extra: extras(p, PROJECT_FIELDS),
      }),
    );
    return { status: 200, body: { project: projectView(req.baseUrl, project) } };
  });

  router.route("DELETE", "projects/:id", async (req, caller) => {
    const project = await dir.projects.get(req.params.id!);
    enforce("identity:delete_project", caller, { projectId: project.id, domainId: project.domainId });
    await dir.change((w) => dir.projects.delete(w, project.id));
    return { status: 204 };
  });

  router.route("GET", "domains", async (req, caller) => {
    enforce("identity:list_domains", caller);
    const domains = await dir.domains.list({
      name: queryText(req.query, "name"),
      enabled: queryBool(req.query, "enabled"),
    });
    return {
      status: 200,
      body: collection(
        req.baseUrl,
        "domains",
        "domains",
        domains.map((d) => domainView(req.baseUrl, d)),
      ),
    };
  });

  router.route("POST", "domains", async (req, caller) => {
    const d = parseBody(domainCreate, req.body, "domain");
    enforce("identity:create_domain", caller);
    const domain = await dir.change((w) =>
      dir.domains.create(w, {
        name: d.name,
        description: d.description ?? "",
        enabled: d.enabled ?? true,
        tags: d.tags ?? [],
        extra: extras(d, DOMAIN_FIELDS),
      }),
    );
    return { status: 201, body: { domain: domainView(req.baseUrl, domain) } };
  });

  router.route("GET", "domains/:id", async (req, caller) => {
    const domain = await dir.domains.get(req.params.id!);
    enforce("identity:get_domain", caller, { domainId: domain.id });
    return { status: 200, body: { domain: domainView(req.baseUrl, domain) } };
  });

  router.route("PATCH", "domains/:id", async (req, caller) => {
    const d = parseBody(domainUpdate, req.body, "domain");
    const before = await dir.domains.get(req.params.id!);
    enforce("identity:update_domain", caller, { domainId: before.id });
    const domain = await dir.change((w) =>
      dir.domains.update(w, before.id, {
        name: d.name,
        description: d.description ?? undefined,
        enabled: d.enabled,
        tags: d.tags,
        extra: extras(d, DOMAIN_FIELDS),
      }),
    );
    return { status: 200, body: { domain: domainView(req.baseUrl, domain) } };
  });

  router.route("DELETE", "domains/:id", async (req, caller) => {
    const domain = await dir.domains.get(req.params.id!);
    enforce("identity:delete_domain", caller, { domainId: domain.id });
    await dir.change((w) => dir.domains.delete(w, domain.id));
    return { status: 204 };
  });
}
