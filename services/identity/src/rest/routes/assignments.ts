// Role assignments: grants on a project, a domain or the system
// (/v3/{projects,domains}/{id}/users/{user}/roles/{role}, /v3/system/users/{user}/roles/{role}) and
// the listing /v3/role_assignments with Keystone's filters.
import { invalidInput, notFound } from "@stratus/runtime";
import type { AuthenticatedIdentity } from "@stratus/runtime/auth";
import { type Action, enforce } from "../../auth/policy.js";
import type { Target } from "../../directory/assignments.js";
import { queryFlag, queryText } from "../input.js";
import type { KeystoneRequest, KeystoneRouter } from "../keystone-server.js";
import { type AssignmentNames, assignmentView, collection, roleView } from "../views.js";
import type { RouteDeps } from "./deps.js";

interface GrantActions {
  list: Action;
  check: Action;
  create: Action;
  revoke: Action;
}

const TARGET_GRANTS: GrantActions = {
  list: "identity:list_grants",
  check: "identity:check_grant",
  create: "identity:create_grant",
  revoke: "identity:revoke_grant",
};
const SYSTEM_GRANTS: GrantActions = {
  list: "identity:list_system_grants_for_user",
  check: "identity:check_system_grant_for_user",
  create: "identity:create_system_grant_for_user",
  revoke: "identity:revoke_system_grant_for_user",
};

export function assignmentRoutes(router: KeystoneRouter, deps: RouteDeps): void {
  const { dir } = deps;

  /** The target named by the path, existing, and the domain it is in (for policy). */
  const targetOf = async (
    kind: string,
    req: KeystoneRequest,
  ): Promise<{ target: Target; domainId?: string }> => {
    if (kind === "system") return { target: { type: "system" } };
    if (kind === "projects") {
      const p = await dir.projects.get(req.params.target!);
      return { target: { type: "project", id: p.id }, domainId: p.domainId };
    }
    const d = await dir.domains.get(req.params.target!);
    return { target: { type: "domain", id: d.id }, domainId: d.id };
  };

  for (const kind of ["projects", "domains", "system"] as const) {
    const base = kind === "system" ? "system/users/:user/roles" : `${kind}/:target/users/:user/roles`;
    const actions = kind === "system" ? SYSTEM_GRANTS : TARGET_GRANTS;
    const resolve = async (req: KeystoneRequest, caller: AuthenticatedIdentity, action: Action) => {
      const { target, domainId } = await targetOf(kind, req);
      enforce(action, caller, { domainId, userId: req.params.user });
      return target;
    };

    router.route("GET", base, async (req, caller) => {
      const target = await resolve(req, caller, actions.list);
      await dir.users.get(req.params.user!);
      const found = await dir.assignments.list(
        {
          userId: req.params.user!,
          ...(target.type === "system" ? { system: true } : { [`${target.type}Id`]: target.id }),
        },
        false,
      );
      const roles = await dir.roles.byIds(found.map((a) => a.roleId));
      const path = base.replace(":target", req.params.target ?? "").replace(":user", req.params.user!);
      return {
        status: 200,
        body: collection(
          req.baseUrl,
          "roles",
          path,
          roles.map((r) => roleView(req.baseUrl, r)),
        ),
      };
    });
    router.route("PUT", `${base}/:role`, async (req, caller) => {
      const target = await resolve(req, caller, actions.create);
      await dir.change((w) => dir.assignments.grant(w, req.params.user!, target, req.params.role!));
      return { status: 204 };
    });
    const check = async (req: KeystoneRequest, caller: AuthenticatedIdentity) => {
      const target = await resolve(req, caller, actions.check);
      if (!(await dir.assignments.has(req.params.user!, target, req.params.role!))) {
        throw notFound(
          `Could not find role assignment with role: ${req.params.role}, user or group: ${req.params.user}.`,
        );
      }
      return { status: 204 };
    };
    router.route("HEAD", `${base}/:role`, check);
    router.route("GET", `${base}/:role`, check);
    router.route("DELETE", `${base}/:role`, async (req, caller) => {
      const target = await resolve(req, caller, actions.revoke);
      await dir.change((w) => dir.assignments.revoke(w, req.params.user!, target, req.params.role!));
      return { status: 204 };
    });
  }

  router.route("GET", "role_assignments", async (req, caller) => {
    const q = req.query;
    for (const unsupported of ["group.id", "scope.OS-INHERIT:inherited_to"]) {
      if (q.has(unsupported))
        throw invalidInput(`Filtering role assignments by ${unsupported} is not supported.`);
    }
    const projectId = queryText(q, "scope.project.id");
    const domainId = queryText(q, "scope.domain.id");
    const system = q.has("scope.system");
    if ([projectId, domainId, system].filter(Boolean).length > 1) {
      throw invalidInput("Specify only one of scope.project.id, scope.domain.id and scope.system.");
    }
    // A domain reader lists the grants on its own domain only.
    enforce("identity:list_role_assignments", caller, { domainId });
    const found = await dir.assignments.list(
      { userId: queryText(q, "user.id"), projectId, domainId, system, roleId: queryText(q, "role.id") },
      queryFlag(q, "effective"),
    );
    const names = queryFlag(q, "include_names") ? await namesFor(deps, found) : undefined;
    const body = collection(
      req.baseUrl,
      "role_assignments",
      "role_assignments",
      found.map((a) => assignmentView(req.baseUrl, a, names)),
    );
    return { status: 200, body };
  });
}

async function namesFor(
  deps: RouteDeps,
  found: Awaited<ReturnType<RouteDeps["dir"]["assignments"]["list"]>>,
) {
  const { dir } = deps;
  const names: AssignmentNames = {
    users: new Map(),
    projects: new Map(),
    domains: new Map(),
    roles: new Map(),
  };
  for (const r of await dir.roles.byIds(new Set(found.map((a) => a.roleId)))) names.roles.set(r.id, r.name);
  for (const userId of new Set(found.map((a) => a.userId))) {
    const u = await dir.users.find(userId);
    if (u) names.users.set(u.id, { name: u.name, domainId: u.domainId });
  }
  for (const a of found) {
    if (a.target.type === "project" && !names.projects.has(a.target.id)) {
      const p = await dir.projects.find(a.target.id);
      if (p) names.projects.set(p.id, { name: p.name, domainId: p.domainId });
    }
  }
  const domainIds = new Set<string>();
  for (const u of names.users.values()) domainIds.add(u.domainId);
  for (const p of names.projects.values()) domainIds.add(p.domainId);
  for (const a of found) if (a.target.type === "domain") domainIds.add(a.target.id);
  names.domains = await dir.domains.names([...domainIds]);
  return names;
}
