// /v3/users/{user}/application_credentials: a user's credentials for programs. The secret is
// answered once, at creation. A token made from a restricted credential cannot manage credentials.
import { invalidInput, notFound, StratusError } from "@stratus/runtime";
import type { AuthenticatedIdentity } from "@stratus/runtime/auth";
import { z } from "zod";
import { enforce } from "../../auth/policy.js";
import type { RoleRecord } from "../../directory/roles.js";
import { description, name, parseBody, queryText, text } from "../input.js";
import type { KeystoneRouter } from "../keystone-server.js";
import { applicationCredentialView, collection } from "../views.js";
import type { RouteDeps } from "./deps.js";

const createSchema = z.object({
  name,
  description: description.nullish(),
  secret: z.string().min(1).max(4096).nullish(),
  expires_at: text(64).nullish(),
  roles: z
    .array(z.object({ id: text(64).optional(), name: text(255).optional() }))
    .max(64)
    .nullish(),
  unrestricted: z.boolean().nullish(),
  access_rules: z.array(z.unknown()).max(0, "access rules are not supported").nullish(),
});

export function applicationCredentialRoutes(router: KeystoneRouter, deps: RouteDeps): void {
  const { dir } = deps;
  const base = "users/:user/application_credentials";

  /** Keystone: a token from a restricted application credential cannot make or delete others. */
  const unrestrictedToken = async (caller: AuthenticatedIdentity) => {
    if (!caller.applicationCredentialId) return;
    const c = await dir.applicationCredentials.find(caller.userId, caller.applicationCredentialId);
    if (!c?.unrestricted) {
      throw new StratusError(
        "forbidden",
        "You are not authorized to perform the requested action: Using method 'application_credential' is not allowed for managing additional application credentials.",
      );
    }
  };

  const rolesOf = (ids: string[]) => dir.roles.byIds(ids);

  router.route("POST", base, async (req, caller) => {
    const c = parseBody(createSchema, req.body, "application_credential");
    const userId = req.params.user!;
    enforce("identity:create_application_credential", caller, { userId });
    await unrestrictedToken(caller);
    if (!caller.projectId) {
      throw invalidInput("An application credential is made from a project-scoped token.");
    }
    const held = await dir.roles.byNames(caller.roles);
    let roles: RoleRecord[] = held;
    if (c.roles?.length) {
      roles = c.roles.map((ref) => {
        const role = held.find((r) => (ref.id ? r.id === ref.id : r.name === ref.name));
        if (!role) {
          throw notFound(
            `Could not find role assignment with role: ${ref.id ?? ref.name}, user or group: ${userId}.`,
          );
        }
        return role;
      });
    }
    let expiresAt: Date | undefined;
    if (c.expires_at) {
      expiresAt = new Date(c.expires_at);
      if (Number.isNaN(expiresAt.getTime())) throw invalidInput(`Invalid expires_at: ${c.expires_at}.`);
      if (expiresAt.getTime() <= Date.now()) throw invalidInput("The expiration time is in the past.");
    }
    const { credential, secret } = await dir.change((w) =>
      dir.applicationCredentials.create(
        w,
        {
          userId,
          projectId: caller.projectId,
          name: c.name,
          description: c.description ?? "",
          roleIds: roles.map((r) => r.id),
          unrestricted: c.unrestricted ?? false,
          expiresAt,
        },
        c.secret ?? undefined,
      ),
    );
    return {
      status: 201,
      body: {
        application_credential: { ...applicationCredentialView(req.baseUrl, credential, roles), secret },
      },
    };
  });

  router.route("GET", base, async (req, caller) => {
    const userId = req.params.user!;
    enforce("identity:list_application_credentials", caller, { userId });
    const found = await dir.applicationCredentials.list(userId, { name: queryText(req.query, "name") });
    const items = [];
    for (const c of found) items.push(applicationCredentialView(req.baseUrl, c, await rolesOf(c.roleIds)));
    return {
      status: 200,
      body: collection(
        req.baseUrl,
        "application_credentials",
        `users/${userId}/application_credentials`,
        items,
      ),
    };
  });

  router.route("GET", `${base}/:id`, async (req, caller) => {
    const userId = req.params.user!;
    enforce("identity:get_application_credential", caller, { userId });
    const c = await dir.applicationCredentials.get(userId, req.params.id!);
    return {
      status: 200,
      body: { application_credential: applicationCredentialView(req.baseUrl, c, await rolesOf(c.roleIds)) },
    };
  });

  router.route("DELETE", `${base}/:id`, async (req, caller) => {
    const userId = req.params.user!;
    enforce("identity:delete_application_credential", caller, { userId });
    await unrestrictedToken(caller);
    await dir.change((w) => dir.applicationCredentials.delete(w, userId, req.params.id!));
    return { status: 204 };
  });
}
