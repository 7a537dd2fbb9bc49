// /v3/auth: issuing (POST), validating (GET, HEAD) and revoking (DELETE) tokens, and what a token
// may be scoped to (projects, domains, system) and its catalog.
import { invalidInput, StratusError } from "@stratus/runtime";
import type { AuthenticatedIdentity } from "@stratus/runtime/auth";
import { z } from "zod";
import type { Credentials, DomainRef, ScopeRequest, UserRef } from "../../auth/authenticator.js";
import { enforce } from "../../auth/policy.js";
import { parseBody, text } from "../input.js";
import type { KeystoneRequest, KeystoneRouter } from "../keystone-server.js";
import { tokenBody } from "../token-body.js";
import { catalogView, collection, domainView, projectView } from "../views.js";
import type { RouteDeps } from "./deps.js";

const id = text(255).min(1);
const secret = z.string().max(4096);
const domainRef = z.object({ id: id.optional(), name: text(255).optional() });
const userRef = z.object({ id: id.optional(), name: text(255).optional(), domain: domainRef.optional() });

const authSchema = z.object({
  identity: z.object({
    methods: z.array(z.string().max(64)).min(1).max(4),
    password: z.object({ user: userRef.extend({ password: secret }) }).optional(),
    token: z.object({ id: z.string().max(8192) }).optional(),
    application_credential: z
      .object({ id: id.optional(), name: text(255).optional(), secret, user: userRef.optional() })
      .optional(),
  }),
  scope: z
    .union([
      z.literal("unscoped"),
      z.object({
        project: z
          .object({ id: id.optional(), name: text(255).optional(), domain: domainRef.optional() })
          .optional(),
        domain: domainRef.optional(),
        system: z.object({ all: z.literal(true) }).optional(),
      }),
    ])
    .optional(),
});

type AuthBody = z.infer<typeof authSchema>;

function toDomainRef(d: z.infer<typeof domainRef> | undefined, what: string): DomainRef {
  if (d?.id) return { id: d.id };
  if (d?.name) return { name: d.name };
  throw invalidInput(`Expecting to find domain id or name in ${what}.`);
}

function toUserRef(u: z.infer<typeof userRef> | undefined): UserRef {
  if (u?.id) return { id: u.id };
  if (u?.name) return { name: u.name, domain: toDomainRef(u.domain, "user") };
  throw invalidInput("Expecting to find user id or name in identity.");
}

function credentialsOf(identity: AuthBody["identity"]): Credentials {
  const [method, ...more] = identity.methods;
  if (more.length > 0) throw new StratusError("unauthorized", "several authentication methods at once");
  switch (method) {
    case "password": {
      const u = identity.password?.user;
      if (!u) throw invalidInput("Expecting to find password in identity.");
      return { method, user: toUserRef(u), password: u.password };
    }
    case "token":
      if (!identity.token) throw invalidInput("Expecting to find token in identity.");
      return { method, token: identity.token.id };
    case "application_credential": {
      const c = identity.application_credential;
      if (!c) throw invalidInput("Expecting to find application_credential in identity.");
      if (c.id) return { method, credential: { id: c.id }, secret: c.secret };
      if (!c.name) throw invalidInput("Expecting to find application credential id or name.");
      return { method, credential: { name: c.name, user: toUserRef(c.user) }, secret: c.secret };
    }
    default:
      throw new StratusError("unauthorized", `unsupported authentication method ${method}`);
  }
}

function scopeOf(scope: AuthBody["scope"]): ScopeRequest {
  if (scope === undefined) return { kind: "default" };
  if (scope === "unscoped") return { kind: "unscoped" };
  const asked = [scope.project, scope.domain, scope.system].filter(Boolean).length;
  if (asked > 1)
    throw invalidInput("Specifying more than one of project, domain and system scope is not allowed.");
  if (scope.project) {
    const p = scope.project;
    if (p.id) return { kind: "project", project: { id: p.id } };
    if (p.name)
      return { kind: "project", project: { name: p.name, domain: toDomainRef(p.domain, "project") } };
    throw invalidInput("Expecting to find project id or name in scope.");
  }
  if (scope.domain) return { kind: "domain", domain: toDomainRef(scope.domain, "scope") };
  if (scope.system) return { kind: "system" };
  return { kind: "default" };
}

export function authRoutes(router: KeystoneRouter, deps: RouteDeps): void {
  const { dir, authenticator, tokens } = deps;

  /** The token in X-Subject-Token, valid; 404 otherwise (whoever asks). */
  const subject = async (
    req: KeystoneRequest,
  ): Promise<{ token: string; identity: AuthenticatedIdentity }> => {
    const sent = req.headers["x-subject-token"];
    const token = Array.isArray(sent) ? sent[0] : sent;
    if (!token) throw invalidInput("Expecting to find X-Subject-Token in request headers.");
    try {
      return { token, identity: await tokens.validate(token) };
    } catch (err) {
      if (err instanceof StratusError && err.kind === "unavailable") throw err;
      throw new StratusError("not_found", "Could not find token.");
    }
  };

  const validateSubject = async (req: KeystoneRequest, caller: AuthenticatedIdentity) => {
    const s = await subject(req);
    enforce(req.method === "HEAD" ? "identity:check_token" : "identity:validate_token", caller, {
      userId: s.identity.userId,
    });
    const body = await tokenBody(dir, s.identity, { catalog: !req.query.has("nocatalog") });
    return { status: 200, body, headers: { "x-subject-token": s.token } };
  };

  router.open("POST", "auth/tokens", async (req) => {
    const auth = parseBody(authSchema, req.body, "auth");
    const result = await authenticator.authenticate(credentialsOf(auth.identity), scopeOf(auth.scope));
    const body = await tokenBody(dir, result.identity, {
      catalog: !req.query.has("nocatalog"),
      roles: result.roles,
    });
    return { status: 201, body, headers: { "x-subject-token": result.token } };
  });
  router.route("GET", "auth/tokens", validateSubject);
  router.route("HEAD", "auth/tokens", validateSubject);
  router.route("DELETE", "auth/tokens", async (req, caller) => {
    const s = await subject(req);
    enforce("identity:revoke_token", caller, { userId: s.identity.userId });
    await dir.change(async (w) => w.revoke({ auditId: s.identity.auditIds[0]! }));
    return { status: 204 };
  });

  router.route("GET", "auth/projects", async (req, caller) => {
    const ids = await dir.assignments.targetsOf(caller.userId, "project");
    const projects = await dir.projects.list({ ids, enabled: true });
    return {
      status: 200,
      body: collection(
        req.baseUrl,
        "projects",
        "auth/projects",
        projects.map((p) => projectView(req.baseUrl, p)),
      ),
    };
  });
  router.route("GET", "auth/domains", async (req, caller) => {
    const ids = new Set(await dir.assignments.targetsOf(caller.userId, "domain"));
    const domains = (await dir.domains.list({ enabled: true })).filter((d) => ids.has(d.id));
    return {
      status: 200,
      body: collection(
        req.baseUrl,
        "domains",
        "auth/domains",
        domains.map((d) => domainView(req.baseUrl, d)),
      ),
    };
  });
  router.route("GET", "auth/system", async (req, caller) => {
    const has = (await dir.assignments.targetsOf(caller.userId, "system")).length > 0;
    return {
      status: 200,
      body: collection(req.baseUrl, "system", "auth/system", has ? [{ all: true }] : []),
    };
  });
  router.route("GET", "auth/catalog", async (req, caller) => {
    if (!caller.projectId && !caller.domainId && !caller.system) {
      throw new StratusError("forbidden", "Unable to get the catalog for an unscoped token.");
    }
    const catalog = catalogView(await dir.catalog.entries());
    return { status: 200, body: { catalog, links: { self: `${req.baseUrl}/v3/auth/catalog` } } };
  });
}
