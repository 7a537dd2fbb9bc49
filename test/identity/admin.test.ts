// The Keystone admin API against the identity process: users, projects, domains, roles and their
// implications, grants and role assignments, application credentials, the catalog; Keystone's
// filters, status codes (404, 409, 403) and the default roles' policy.
import { type IdentityUnderTest, startIdentity } from "@stratus/runtime/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { call, issue } from "./helpers.js";

let id: IdentityUnderTest;
let url = "";
let admin = "";
let roles: Record<string, string> = {};

beforeAll(async () => {
  id = await startIdentity();
  url = id.restUrl;
  admin = await issue(url, "admin", id.adminPassword, {
    project: { name: "admin", domain: { name: "Default" } },
  });
  roles = Object.fromEntries(
    (await call(url, "GET", "/v3/roles", { token: admin })).body.roles.map(
      (r: { name: string; id: string }) => [r.name, r.id],
    ),
  );
});
afterAll(async () => {
  await id?.close();
});

const post = (path: string, body: unknown, token = admin) => call(url, "POST", path, { token, body });
const get = (path: string, token = admin) => call(url, "GET", path, { token });

describe("identity admin API", () => {
  it("creates, filters, updates and deletes users; a duplicate name is 409", async () => {
    const made = await post("/v3/users", { user: { name: "u1", password: "pw", email: "u1@example.test" } });
    expect(made.status).toBe(201);
    expect(made.body.user).toMatchObject({
      name: "u1",
      domain_id: "default",
      enabled: true,
      email: "u1@example.test",
    });
    expect(made.body.user.password).toBeUndefined();
    expect(JSON.stringify(made.body)).not.toContain("argon2");
    expect((await post("/v3/users", { user: { name: "u1" } })).status).toBe(409);
    expect((await get("/v3/users?name=u1")).body.users).toHaveLength(1);
    expect((await get("/v3/users?enabled=false")).body.users).toHaveLength(0);
    const uid = made.body.user.id;
    const patched = await call(url, "PATCH", `/v3/users/${uid}`, {
      token: admin,
      body: { user: { enabled: false } },
    });
    expect(patched.body.user.enabled).toBe(false);
    expect((await get("/v3/users?enabled=false")).body.users.map((u: { id: string }) => u.id)).toEqual([uid]);
    expect((await call(url, "DELETE", `/v3/users/${uid}`, { token: admin })).status).toBe(204);
    const gone = await get(`/v3/users/${uid}`);
    expect(gone.status).toBe(404);
    expect(gone.body.error).toEqual({
      code: 404,
      message: `Could not find user: ${uid}.`,
      title: "Not Found",
    });
  });

  it("creates projects in a domain; a domain must be disabled before it is deleted", async () => {
    const dom = await post("/v3/domains", { domain: { name: "d1" } });
    expect(dom.status).toBe(201);
    const did = dom.body.domain.id;
    const p = await post("/v3/projects", { project: { name: "p1", domain_id: did, tags: ["a"] } });
    expect(p.body.project).toMatchObject({
      name: "p1",
      domain_id: did,
      parent_id: did,
      is_domain: false,
      tags: ["a"],
    });
    expect((await post("/v3/projects", { project: { name: "p1", domain_id: did } })).status).toBe(409);
    expect((await post("/v3/projects", { project: { name: "p1" } })).status).toBe(201);
    expect((await get(`/v3/projects?domain_id=${did}`)).body.projects).toHaveLength(1);
    const refused = await call(url, "DELETE", `/v3/domains/${did}`, { token: admin });
    expect(refused.status).toBe(403);
    await call(url, "PATCH", `/v3/domains/${did}`, { token: admin, body: { domain: { enabled: false } } });
    expect((await call(url, "DELETE", `/v3/domains/${did}`, { token: admin })).status).toBe(204);
    expect((await get(`/v3/projects/${p.body.project.id}`)).status).toBe(404);
  });

  it("keeps roles and their implications (admin ⇒ member ⇒ reader), and refuses a cycle", async () => {
    const implied = await get(`/v3/roles/${roles.admin}/implies`);
    expect(implied.body.role_inference.implies.map((r: { name: string }) => r.name)).toEqual(["member"]);
    const inferences = await get("/v3/role_inferences");
    expect(inferences.body.role_inferences).toHaveLength(2);
    expect(
      (await call(url, "HEAD", `/v3/roles/${roles.member}/implies/${roles.reader}`, { token: admin })).status,
    ).toBe(204);
    expect(
      (await call(url, "PUT", `/v3/roles/${roles.reader}/implies/${roles.admin}`, { token: admin })).status,
    ).toBe(400);
    const extra = await post("/v3/roles", { role: { name: "auditor" } });
    expect(extra.status).toBe(201);
    expect((await post("/v3/roles", { role: { name: "auditor" } })).status).toBe(409);
    const rule = await call(url, "PUT", `/v3/roles/${extra.body.role.id}/implies/${roles.reader}`, {
      token: admin,
    });
    expect(rule.status).toBe(201);
    expect(rule.body.role_inference.prior_role.name).toBe("auditor");
  });

  it("grants roles and lists role assignments with user.id, scope, effective and include_names", async () => {
    const p = (await post("/v3/projects", { project: { name: "ra" } })).body.project;
    const u = (await post("/v3/users", { user: { name: "ra-user", password: "pw" } })).body.user;
    const grant = `/v3/projects/${p.id}/users/${u.id}/roles/${roles.member}`;
    expect((await call(url, "HEAD", grant, { token: admin })).status).toBe(404);
    expect((await call(url, "PUT", grant, { token: admin })).status).toBe(204);
    expect((await call(url, "HEAD", grant, { token: admin })).status).toBe(204);
    expect(
      (await get(`/v3/projects/${p.id}/users/${u.id}/roles`)).body.roles.map((r: { name: string }) => r.name),
    ).toEqual(["member"]);
    const direct = await get(`/v3/role_assignments?user.id=${u.id}`);
    expect(direct.body.role_assignments).toEqual([
      {
        role: { id: roles.member },
        scope: { project: { id: p.id } },
        user: { id: u.id },
        links: { assignment: `${url}/v3/projects/${p.id}/users/${u.id}/roles/${roles.member}` },
      },
    ]);
    const effective = await get(`/v3/role_assignments?user.id=${u.id}&effective&include_names`);
    const named = effective.body.role_assignments.map((a: { role: { name: string } }) => a.role.name).sort();
    expect(named).toEqual(["member", "reader"]);
    expect(effective.body.role_assignments[0].user).toMatchObject({
      name: "ra-user",
      domain: { id: "default" },
    });
    expect(effective.body.role_assignments[0].scope.project).toMatchObject({ name: "ra" });
    const byRole = await get(
      `/v3/role_assignments?scope.project.id=${p.id}&role.id=${roles.reader}&effective`,
    );
    expect(byRole.body.role_assignments).toHaveLength(1);
    const system = await get(`/v3/role_assignments?scope.system=all`);
    expect(system.body.role_assignments[0].scope).toEqual({ system: { all: true } });
    expect(
      (await call(url, "PUT", `/v3/system/users/${u.id}/roles/${roles.reader}`, { token: admin })).status,
    ).toBe(204);
    expect((await call(url, "DELETE", grant, { token: admin })).status).toBe(204);
    expect((await call(url, "DELETE", grant, { token: admin })).status).toBe(404);
    expect(
      (await call(url, "PUT", `/v3/projects/nope/users/${u.id}/roles/${roles.member}`, { token: admin }))
        .status,
    ).toBe(404);
  });

  it("registers services and endpoints, which then are in every token's catalog", async () => {
    const svc = await post("/v3/services", { service: { type: "compute", name: "nova" } });
    expect(svc.status).toBe(201);
    const ep = await post("/v3/endpoints", {
      endpoint: {
        service_id: svc.body.service.id,
        interface: "public",
        url: "http://127.0.0.1:8774/v2.1",
        region_id: "RegionOne",
      },
    });
    expect(ep.status).toBe(201);
    expect(ep.body.endpoint).toMatchObject({
      interface: "public",
      region: "RegionOne",
      url: "http://127.0.0.1:8774/v2.1",
    });
    const missingRegion = await post("/v3/endpoints", {
      endpoint: {
        service_id: svc.body.service.id,
        interface: "admin",
        url: "http://x",
        region_id: "Nowhere",
      },
    });
    expect(missingRegion.status).toBe(404);
    expect((await get("/v3/endpoints?interface=public")).body.endpoints.length).toBeGreaterThanOrEqual(2);
    const token = await call(url, "POST", "/v3/auth/tokens", {
      body: {
        auth: {
          identity: {
            methods: ["password"],
            password: { user: { name: "admin", domain: { id: "default" }, password: id.adminPassword } },
          },
          scope: { system: { all: true } },
        },
      },
    });
    const compute = token.body.token.catalog.find((s: { type: string }) => s.type === "compute");
    expect(compute.endpoints[0].url).toBe("http://127.0.0.1:8774/v2.1");
    expect((await get("/v3/regions/RegionOne")).body.region.id).toBe("RegionOne");
  });

  it("applies the default roles: a member reads itself and its project, changes its password, nothing else", async () => {
    const p = (await post("/v3/projects", { project: { name: "policy" } })).body.project;
    const u = (await post("/v3/users", { user: { name: "pol", password: "pol-pw" } })).body.user;
    const other = (await post("/v3/users", { user: { name: "pol-other", password: "x" } })).body.user;
    await call(url, "PUT", `/v3/projects/${p.id}/users/${u.id}/roles/${roles.member}`, { token: admin });
    const member = await issue(url, "pol", "pol-pw", { project: { id: p.id } });
    expect((await get(`/v3/users/${u.id}`, member)).status).toBe(200);
    expect((await get(`/v3/projects/${p.id}`, member)).status).toBe(200);
    expect(
      (await get(`/v3/users/${u.id}/projects`, member)).body.projects.map((x: { id: string }) => x.id),
    ).toEqual([p.id]);
    const forbidden = await get(`/v3/users/${other.id}`, member);
    expect(forbidden.status).toBe(403);
    expect(forbidden.body.error).toEqual({
      code: 403,
      message: "You are not authorized to perform the requested action: identity:get_user.",
      title: "Forbidden",
    });
    expect((await get("/v3/users", member)).status).toBe(403);
    expect((await post("/v3/projects", { project: { name: "nope" } }, member)).status).toBe(403);
    expect(
      (await call(url, "PUT", `/v3/projects/${p.id}/users/${u.id}/roles/${roles.admin}`, { token: member }))
        .status,
    ).toBe(403);
    expect(
      (
        await post(
          `/v3/users/${other.id}/application_credentials`,
          { application_credential: { name: "x" } },
          member,
        )
      ).status,
    ).toBe(403);
    const wrongOriginal = await post(`/v3/users/${u.id}/password`, {
      user: { password: "n", original_password: "bad" },
    });
    expect(wrongOriginal.status).toBe(401);
    expect(
      (
        await post(`/v3/users/${u.id}/password`, {
          user: { password: "pol-pw2", original_password: "pol-pw" },
        })
      ).status,
    ).toBe(204);
    await issue(url, "pol", "pol-pw2", { project: { id: p.id } });
  });

  it("lets a system reader read everything and change nothing", async () => {
    const u = (await post("/v3/users", { user: { name: "sysread", password: "sr-pw" } })).body.user;
    await call(url, "PUT", `/v3/system/users/${u.id}/roles/${roles.reader}`, { token: admin });
    const reader = await issue(url, "sysread", "sr-pw", { system: { all: true } });
    expect((await get("/v3/users", reader)).status).toBe(200);
    expect((await get("/v3/projects", reader)).status).toBe(200);
    expect((await get("/v3/role_assignments", reader)).status).toBe(200);
    expect((await get("/v3/services", reader)).status).toBe(200);
    expect((await post("/v3/users", { user: { name: "no" } }, reader)).status).toBe(403);
    expect((await post("/v3/services", { service: { type: "x" } }, reader)).status).toBe(403);
  });

  it("never logs a password or a secret", async () => {
    await post("/v3/users", { user: { name: "quiet", password: "very-secret-password-123" } });
    await call(url, "POST", "/v3/auth/tokens", {
      body: {
        auth: {
          identity: {
            methods: ["password"],
            password: { user: { name: "quiet", domain: { id: "default" }, password: "wrong-secret-456" } },
          },
        },
      },
    });
    const logs = id.process.output.join("\n");
    expect(logs).not.toContain("very-secret-password-123");
    expect(logs).not.toContain("wrong-secret-456");
    expect(logs).not.toContain(id.adminPassword);
  });
});
