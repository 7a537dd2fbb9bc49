// /v3/roles and the rules between them (/v3/roles/{prior}/implies/{implied}, /v3/role_inferences).
import { notFound } from "@stratus/runtime";
import { z } from "zod";
import { enforce } from "../../auth/policy.js";
import type { RoleRecord } from "../../directory/roles.js";
import { description, extras, name, parseBody, queryText } from "../input.js";
import type { KeystoneRouter } from "../keystone-server.js";
import { collection, roleRef, roleView } from "../views.js";
import type { RouteDeps } from "./deps.js";

const ROLE_FIELDS = ["id", "name", "description", "domain_id", "options"] as const;
const roleCreate = z.looseObject({
  name,
  description: description.nullish(),
  domain_id: z.null().optional(),
});
const roleUpdate = z.looseObject({ name: name.optional(), description: description.nullish() });

export function roleRoutes(router: KeystoneRouter, deps: RouteDeps): void {
  const { dir } = deps;

  router.route("GET", "roles", async (req, caller) => {
    enforce("identity:list_roles", caller);
    const roles = await dir.roles.list({ name: queryText(req.query, "name") });
    return {
      status: 200,
      body: collection(
        req.baseUrl,
        "roles",
        "roles",
        roles.map((r) => roleView(req.baseUrl, r)),
      ),
    };
  });
  router.route("POST", "roles", async (req, caller) => {
    const r = parseBody(roleCreate, req.body, "role");
    enforce("identity:create_role", caller);
    const role = await dir.change((w) =>
      dir.roles.create(w, { name: r.name, description: r.description ?? "", extra: extras(r, ROLE_FIELDS) }),
    );
    return { status: 201, body: { role: roleView(req.baseUrl, role) } };
  });
  router.route("GET", "roles/:id", async (req, caller) => {
    enforce("identity:get_role", caller);
    return { status: 200, body: { role: roleView(req.baseUrl, await dir.roles.get(req.params.id!)) } };
  });
  router.route("PATCH", "roles/:id", async (req, caller) => {
    const r = parseBody(roleUpdate, req.body, "role");
    enforce("identity:update_role", caller);
    const role = await dir.change((w) =>
      dir.roles.update(w, req.params.id!, {
        name: r.name,
        description: r.description ?? undefined,
        extra: extras(r, ROLE_FIELDS),
      }),
    );
    return { status: 200, body: { role: roleView(req.baseUrl, role) } };
  });
  router.route("DELETE", "roles/:id", async (req, caller) => {
    enforce("identity:delete_role", caller);
    await dir.change((w) => dir.roles.delete(w, req.params.id!));
    return { status: 204 };
  });

  const inference = (base: string, prior: RoleRecord, implies: RoleRecord | RoleRecord[]) => ({
    prior_role: roleRef(base, prior),
    implies: Array.isArray(implies) ? implies.map((r) => roleRef(base, r)) : roleRef(base, implies),
  });
  const impliedOf = async (priorId: string) => {
    const rules = (await dir.roles.implications()).filter((r) => r.priorRoleId === priorId);
    return dir.roles.byIds(rules.map((r) => r.impliedRoleId));
  };

  router.route("GET", "roles/:prior/implies", async (req, caller) => {
    enforce("identity:list_implied_roles", caller);
    const prior = await dir.roles.get(req.params.prior!);
    return {
      status: 200,
      body: {
        role_inference: inference(req.baseUrl, prior, await impliedOf(prior.id)),
        links: { self: `${req.baseUrl}/v3/roles/${prior.id}/implies` },
      },
    };
  });
  router.route("PUT", "roles/:prior/implies/:implied", async (req, caller) => {
    enforce("identity:create_implied_role", caller);
    const { prior, implied } = req.params as { prior: string; implied: string };
    await dir.change((w) => dir.roles.imply(w, prior, implied));
    const body = {
      role_inference: inference(req.baseUrl, await dir.roles.get(prior), await dir.roles.get(implied)),
    };
    return { status: 201, body };
  });
  const checkImplication = async (prior: string, implied: string) => {
    const [p, i] = [await dir.roles.get(prior), await dir.roles.get(implied)];
    if (!(await dir.roles.implies(p.id, i.id))) {
      throw notFound(`${prior} does not imply ${implied}.`);
    }
    return [p, i] as const;
  };
  router.route("GET", "roles/:prior/implies/:implied", async (req, caller) => {
    enforce("identity:get_implied_role", caller);
    const [p, i] = await checkImplication(req.params.prior!, req.params.implied!);
    return { status: 200, body: { role_inference: inference(req.baseUrl, p, i) } };
  });
  router.route("HEAD", "roles/:prior/implies/:implied", async (req, caller) => {
    enforce("identity:get_implied_role", caller);
    await checkImplication(req.params.prior!, req.params.implied!);
    return { status: 204 };
  });
  router.route("DELETE", "roles/:prior/implies/:implied", async (req, caller) => {
    enforce("identity:delete_implied_role", caller);
    await dir.change((w) => dir.roles.removeImplication(w, req.params.prior!, req.params.implied!));
    return { status: 204 };
  });
  router.route("GET", "role_inferences", async (req, caller) => {
    enforce("identity:list_role_inference_rules", caller);
    const rules = await dir.roles.implications();
    const roles = new Map((await dir.roles.list()).map((r) => [r.id, r]));
    const priors = [...new Set(rules.map((r) => r.priorRoleId))];
    const body = priors.map((p) =>
      inference(
        req.baseUrl,
        roles.get(p)!,
        rules.filter((r) => r.priorRoleId === p).map((r) => roles.get(r.impliedRoleId)!),
      ),
    );
    return {
      status: 200,
      body: { role_inferences: body, links: { self: `${req.baseUrl}/v3/role_inferences` } },
    };
  });
}
