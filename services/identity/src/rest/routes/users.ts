// /v3/users: users, their password (changed by the user itself with the old one) and their
// projects.
import { StratusError } from "@stratus/runtime";
import { z } from "zod";
import { callerDomain, enforce } from "../../auth/policy.js";
import { extras, name, parseBody, queryBool, queryText, text } from "../input.js";
import type { KeystoneRouter } from "../keystone-server.js";
import { collection, projectView, userView } from "../views.js";
import type { RouteDeps } from "./deps.js";
import { domainListing } from "./domain-listing.js";

const password = z.string().min(1).max(4096);
const KNOWN = ["id", "name", "domain_id", "enabled", "password", "default_project_id", "options"] as const;

const createSchema = z.looseObject({
  name,
  domain_id: text(64).optional(),
  enabled: z.boolean().optional(),
  password: password.nullish(),
  default_project_id: text(64).nullish(),
});

const updateSchema = z.looseObject({
  name: name.optional(),
  enabled: z.boolean().optional(),
  password: password.nullish(),
  default_project_id: text(64).nullish(),
});

const passwordChangeSchema = z.object({ password, original_password: z.string().max(4096) });

export function userRoutes(router: KeystoneRouter, deps: RouteDeps): void {
  const { dir, hasher } = deps;

  router.route("GET", "users", async (req, caller) => {
    const users = await dir.users.list(domainListing(req, caller, "identity:list_users"));
    return {
      status: 200,
      body: collection(
        req.baseUrl,
        "users",
        "users",
        users.map((u) => userView(req.baseUrl, u)),
      ),
    };
  });

  router.route("POST", "users", async (req, caller) => {
    const u = parseBody(createSchema, req.body, "user");
    const domainId = u.domain_id ?? callerDomain(caller);
    enforce("identity:create_user", caller, { domainId });
    const user = await dir.change((w) =>
      dir.users.create(w, {
        name: u.name,
        domainId,
        enabled: u.enabled ?? true,
        defaultProjectId: u.default_project_id ?? undefined,
        extra: extras(u, KNOWN),
        password: u.password ?? undefined,
      }),
    );
    return { status: 201, body: { user: userView(req.baseUrl, user) } };
  });

  router.route("GET", "users/:id", async (req, caller) => {
    const user = await dir.users.get(req.params.id!);
    enforce("identity:get_user", caller, { userId: user.id, domainId: user.domainId });
    return { status: 200, body: { user: userView(req.baseUrl, user) } };
  });

  router.route("PATCH", "users/:id", async (req, caller) => {
    const u = parseBody(updateSchema, req.body, "user");
    const before = await dir.users.get(req.params.id!);
    enforce("identity:update_user", caller, { userId: before.id, domainId: before.domainId });
    const user = await dir.change((w) =>
      dir.users.update(w, before.id, {
        name: u.name,
        enabled: u.enabled,
        password: u.password ?? undefined,
        defaultProjectId: u.default_project_id,
        extra: extras(u, KNOWN),
      }),
    );
    return { status: 200, body: { user: userView(req.baseUrl, user) } };
  });

  router.route("DELETE", "users/:id", async (req, caller) => {
    const user = await dir.users.get(req.params.id!);
    enforce("identity:delete_user", caller, { userId: user.id, domainId: user.domainId });
    await dir.change((w) => dir.users.delete(w, user.id));
    return { status: 204 };
  });

  // Keystone asks no token here: the original password is the proof (a user whose password
  // expired has no token).
  router.open("POST", "users/:id/password", async (req) => {
    const p = parseBody(passwordChangeSchema, req.body, "user");
    const user = await dir.users.credentials(req.params.id!);
    const matches = await hasher.verify(user?.passwordHash, p.original_password);
    if (!user || !matches || !user.enabled) {
      throw new StratusError("unauthorized", "password change refused: wrong original password");
    }
    await dir.change((w) => dir.users.update(w, user.id, { password: p.password }));
    return { status: 204 };
  });

  router.route("GET", "users/:id/projects", async (req, caller) => {
    const user = await dir.users.get(req.params.id!);
    enforce("identity:list_user_projects", caller, { userId: user.id, domainId: user.domainId });
    const ids = await dir.assignments.targetsOf(user.id, "project");
    const projects = await dir.projects.list({
      ids,
      name: queryText(req.query, "name"),
      domainId: queryText(req.query, "domain_id"),
      enabled: queryBool(req.query, "enabled"),
    });
    const path = `users/${user.id}/projects`;
    return {
      status: 200,
      body: collection(
        req.baseUrl,
        "projects",
        path,
        projects.map((p) => projectView(req.baseUrl, p)),
      ),
    };
  });
}
