// Keystone's /v3/auth/tokens against the identity process: each method and scope, validation,
// revocation by DELETE, and each refusal with Keystone's body (401 with WWW-Authenticate).
import { type IdentityUnderTest, startIdentity } from "@stratus/runtime/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { call, issue, passwordAuth } from "./helpers.js";

let id: IdentityUnderTest;
let url = "";
let admin = "";
let demoId = "";
let aliceId = "";
const UNAUTHORIZED = {
  error: { code: 401, message: "The request you have made requires authentication.", title: "Unauthorized" },
};

beforeAll(async () => {
  id = await startIdentity({ env: { IDENTITY_LOCKOUT_FAILURE_ATTEMPTS: "3" } });
  url = id.restUrl;
  admin = await issue(url, "admin", id.adminPassword, {
    project: { name: "admin", domain: { name: "Default" } },
  });
  demoId = (await call(url, "POST", "/v3/projects", { token: admin, body: { project: { name: "demo" } } }))
    .body.project.id;
  aliceId = (
    await call(url, "POST", "/v3/users", {
      token: admin,
      body: { user: { name: "alice", password: "alice-pw", default_project_id: demoId } },
    })
  ).body.user.id;
  const member = (await call(url, "GET", "/v3/roles?name=member", { token: admin })).body.roles[0].id;
  expect(
    (await call(url, "PUT", `/v3/projects/${demoId}/users/${aliceId}/roles/${member}`, { token: admin }))
      .status,
  ).toBe(204);
});
afterAll(async () => {
  await id?.close();
});

function expectUnauthorized(res: { status: number; headers: Headers; body: unknown }) {
  expect(res.status).toBe(401);
  expect(res.body).toEqual(UNAUTHORIZED);
  expect(res.headers.get("www-authenticate")).toBe(`Keystone uri="${url}"`);
}

describe("identity: versions", () => {
  it("answers GET / with the versions (300) and GET /v3 with the v3 document", async () => {
    const root = await call(url, "GET", "/");
    expect(root.status).toBe(300);
    expect(root.body.versions.values[0]).toMatchObject({ id: "v3.14", status: "stable" });
    const v3 = await call(url, "GET", "/v3");
    expect(v3.status).toBe(200);
    expect(v3.body.version.links[0].href).toBe(`${url}/v3/`);
  });
});

describe("identity: issuing tokens", () => {
  it("issues a project-scoped token by password (name + domain name) with Keystone's body", async () => {
    const res = await call(url, "POST", "/v3/auth/tokens", {
      body: passwordAuth("admin", id.adminPassword, {
        project: { name: "admin", domain: { name: "Default" } },
      }),
    });
    expect(res.status).toBe(201);
    expect(res.headers.get("x-subject-token")).toMatch(/^[\w-]+\.[\w-]+\.[\w-]+$/);
    const t = res.body.token;
    expect(t.methods).toEqual(["password"]);
    expect(t.user).toMatchObject({ name: "admin", domain: { id: "default", name: "Default" } });
    expect(t.project).toMatchObject({ name: "admin", domain: { id: "default", name: "Default" } });
    expect(t.roles.map((r: { name: string }) => r.name).sort()).toEqual(["admin", "member", "reader"]);
    expect(t.audit_ids).toHaveLength(1);
    expect(t.expires_at).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/);
    expect(Date.parse(t.expires_at) - Date.parse(t.issued_at)).toBeLessThanOrEqual(3600_000);
    const identity = t.catalog.find((s: { type: string }) => s.type === "identity");
    expect(identity.endpoints[0]).toMatchObject({
      interface: "public",
      region_id: "RegionOne",
      url: `${url}/v3`,
    });
  });

  it("leaves the catalog out with ?nocatalog, and scopes by project id", async () => {
    const res = await call(url, "POST", "/v3/auth/tokens?nocatalog", {
      body: passwordAuth("alice", "alice-pw", { project: { id: demoId } }),
    });
    expect(res.status).toBe(201);
    expect(res.body.token.catalog).toBeUndefined();
    expect(res.body.token.roles.map((r: { name: string }) => r.name).sort()).toEqual(["member", "reader"]);
  });

  it("scopes to the user's default project when no scope is asked, and unscoped on request", async () => {
    const byDefault = await call(url, "POST", "/v3/auth/tokens", { body: passwordAuth("alice", "alice-pw") });
    expect(byDefault.body.token.project.id).toBe(demoId);
    const unscoped = await call(url, "POST", "/v3/auth/tokens", {
      body: passwordAuth("alice", "alice-pw", "unscoped"),
    });
    expect(unscoped.status).toBe(201);
    expect(unscoped.body.token.project).toBeUndefined();
    expect(unscoped.body.token.roles).toBeUndefined();
    expect(unscoped.body.token.catalog).toBeUndefined();
  });

  it("issues system- and domain-scoped tokens to users with a role there, refuses others", async () => {
    const system = await call(url, "POST", "/v3/auth/tokens", {
      body: passwordAuth("admin", id.adminPassword, { system: { all: true } }),
    });
    expect(system.status).toBe(201);
    expect(system.body.token.system).toEqual({ all: true });
    expectUnauthorized(
      await call(url, "POST", "/v3/auth/tokens", {
        body: passwordAuth("alice", "alice-pw", { system: { all: true } }),
      }),
    );
    expectUnauthorized(
      await call(url, "POST", "/v3/auth/tokens", {
        body: passwordAuth("alice", "alice-pw", { domain: { id: "default" } }),
      }),
    );
    const reader = (await call(url, "GET", "/v3/roles?name=reader", { token: admin })).body.roles[0].id;
    await call(url, "PUT", `/v3/domains/default/users/${aliceId}/roles/${reader}`, { token: admin });
    const domain = await call(url, "POST", "/v3/auth/tokens", {
      body: passwordAuth("alice", "alice-pw", { domain: { name: "Default" } }),
    });
    expect(domain.status).toBe(201);
    expect(domain.body.token.domain).toEqual({ id: "default", name: "Default" });
    expect(domain.body.token.roles.map((r: { name: string }) => r.name)).toEqual(["reader"]);
  });

  it("rescopes with the token method", async () => {
    const unscoped = await issue(url, "alice", "alice-pw", "unscoped");
    const res = await call(url, "POST", "/v3/auth/tokens", {
      body: {
        auth: {
          identity: { methods: ["token"], token: { id: unscoped } },
          scope: { project: { id: demoId } },
        },
      },
    });
    expect(res.status).toBe(201);
    expect(res.body.token.methods).toEqual(["token", "password"]);
    expect(res.body.token.project.id).toBe(demoId);
  });

  it("issues a token for an application credential (secret shown once), on its project only", async () => {
    const alice = await issue(url, "alice", "alice-pw", { project: { id: demoId } });
    const made = await call(url, "POST", `/v3/users/${aliceId}/application_credentials`, {
      token: alice,
      body: { application_credential: { name: "ci", roles: [{ name: "reader" }] } },
    });
    expect(made.status).toBe(201);
    const { id: credId, secret } = made.body.application_credential;
    expect(secret.length).toBeGreaterThan(40);
    const shown = await call(url, "GET", `/v3/users/${aliceId}/application_credentials/${credId}`, {
      token: alice,
    });
    expect(shown.body.application_credential.secret).toBeUndefined();
    const auth = (extra: object = {}) => ({
      auth: {
        identity: { methods: ["application_credential"], application_credential: { id: credId, secret } },
        ...extra,
      },
    });
    const res = await call(url, "POST", "/v3/auth/tokens", { body: auth() });
    expect(res.status).toBe(201);
    expect(res.body.token.project.id).toBe(demoId);
    expect(res.body.token.roles.map((r: { name: string }) => r.name)).toEqual(["reader"]);
    expect(res.body.token.application_credential).toMatchObject({ id: credId, name: "ci", restricted: true });
    expectUnauthorized(
      await call(url, "POST", "/v3/auth/tokens", { body: auth({ scope: { system: { all: true } } }) }),
    );
    // A restricted credential's token cannot make another credential.
    const fromCred = res.headers.get("x-subject-token")!;
    const again = await call(url, "POST", `/v3/users/${aliceId}/application_credentials`, {
      token: fromCred,
      body: { application_credential: { name: "more" } },
    });
    expect(again.status).toBe(403);
  });
});

describe("identity: validating and revoking tokens", () => {
  it("validates X-Subject-Token (GET, HEAD) for an admin and for the token's own user only", async () => {
    const alice = await issue(url, "alice", "alice-pw", { project: { id: demoId } });
    const got = await call(url, "GET", "/v3/auth/tokens", {
      token: admin,
      headers: { "x-subject-token": alice },
    });
    expect(got.status).toBe(200);
    expect(got.headers.get("x-subject-token")).toBe(alice);
    expect(got.body.token.user.id).toBe(aliceId);
    const head = await call(url, "HEAD", "/v3/auth/tokens", {
      token: alice,
      headers: { "x-subject-token": alice },
    });
    expect(head.status).toBe(200);
    expect(head.body).toBeUndefined();
    const other = await call(url, "GET", "/v3/auth/tokens", {
      token: alice,
      headers: { "x-subject-token": admin },
    });
    expect(other.status).toBe(403);
    expect(other.body.error.title).toBe("Forbidden");
    const bogus = await call(url, "GET", "/v3/auth/tokens", {
      token: admin,
      headers: { "x-subject-token": "x.y.z" },
    });
    expect(bogus.status).toBe(404);
  });

  it("revokes a token with DELETE: it no longer validates nor authenticates", async () => {
    const alice = await issue(url, "alice", "alice-pw", { project: { id: demoId } });
    expect(
      (await call(url, "DELETE", "/v3/auth/tokens", { token: alice, headers: { "x-subject-token": alice } }))
        .status,
    ).toBe(204);
    expect(
      (await call(url, "GET", "/v3/auth/tokens", { token: admin, headers: { "x-subject-token": alice } }))
        .status,
    ).toBe(404);
    expectUnauthorized(await call(url, "GET", `/v3/users/${aliceId}`, { token: alice }));
  });

  it("lists what a token may be scoped to and its catalog", async () => {
    const alice = await issue(url, "alice", "alice-pw", { project: { id: demoId } });
    const projects = await call(url, "GET", "/v3/auth/projects", { token: alice });
    expect(projects.body.projects.map((p: { id: string }) => p.id)).toEqual([demoId]);
    expect((await call(url, "GET", "/v3/auth/system", { token: alice })).body.system).toEqual([]);
    expect((await call(url, "GET", "/v3/auth/system", { token: admin })).body.system).toEqual([
      { all: true },
    ]);
    const catalog = await call(url, "GET", "/v3/auth/catalog", { token: alice });
    expect(catalog.body.catalog.map((s: { type: string }) => s.type)).toContain("identity");
    const domains = await call(url, "GET", "/v3/auth/domains", { token: alice });
    expect(domains.status).toBe(200);
  });
});

describe("identity: refusals", () => {
  it("answers a missing, forged or malformed token with 401 and WWW-Authenticate", async () => {
    expectUnauthorized(await call(url, "GET", "/v3/users"));
    const [h, p, s] = admin.split(".");
    const claims = JSON.parse(Buffer.from(p!, "base64url").toString());
    const tampered = Buffer.from(JSON.stringify({ ...claims, sub: aliceId })).toString("base64url");
    expectUnauthorized(await call(url, "GET", "/v3/users", { token: `${h}.${tampered}.${s}` }));
    const none = Buffer.from(JSON.stringify({ alg: "none", typ: "JWT" })).toString("base64url");
    expectUnauthorized(await call(url, "GET", "/v3/users", { token: `${none}.${p}.` }));
    expectUnauthorized(await call(url, "GET", "/v3/users", { token: "admin:admin" }));
  });

  it("answers a wrong password and an unknown user alike, in similar time", async () => {
    const attempt = async (name: string) => {
      const started = performance.now();
      const res = await call(url, "POST", "/v3/auth/tokens", {
        body: passwordAuth(name, "not-the-password"),
      });
      expectUnauthorized(res);
      return performance.now() - started;
    };
    // Not alice (a lockout would change nothing visible, but keep her usable).
    await call(url, "POST", "/v3/users", {
      token: admin,
      body: { user: { name: "timing", password: "t-pw" } },
    });
    const median = (xs: number[]) => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
    const known: number[] = [];
    const unknown: number[] = [];
    for (let i = 0; i < 3; i++) {
      known.push(await attempt("timing"));
      unknown.push(await attempt(`nobody-${i}`));
    }
    // Both cost one argon2id hash: the unknown user is not answered faster.
    expect(median(unknown)).toBeGreaterThan(median(known) * 0.4);
  });

  it("locks a user after repeated failures (Keystone's lockout), with the same 401", async () => {
    await call(url, "POST", "/v3/users", {
      token: admin,
      body: { user: { name: "locky", password: "locky-pw" } },
    });
    for (let i = 0; i < 3; i++) {
      expectUnauthorized(await call(url, "POST", "/v3/auth/tokens", { body: passwordAuth("locky", "bad") }));
    }
    expectUnauthorized(
      await call(url, "POST", "/v3/auth/tokens", { body: passwordAuth("locky", "locky-pw") }),
    );
    expect(id.process.output.join("\n")).not.toContain("locky-pw");
  });

  it("answers bad input with 400 (never 500), unknown paths 404, wrong methods 405", async () => {
    const bodies: unknown[] = [
      {},
      { auth: null },
      { auth: { identity: { methods: [] } } },
      { auth: { identity: { methods: ["password"] } } },
      { auth: { identity: { methods: ["password"], password: { user: { name: "x", password: "y" } } } } },
      { auth: { identity: { methods: ["password"], password: { user: { id: 7, password: "y" } } } } },
      { auth: { identity: { methods: ["token"], token: {} } } },
      {
        auth: { identity: { methods: ["password"], password: { user: { id: "a\u0000b", password: "y" } } } },
      },
      {
        auth: {
          ...passwordAuth("alice", "alice-pw").auth,
          scope: { project: { id: demoId }, system: { all: true } },
        },
      },
    ];
    for (const body of bodies) {
      const res = await call(url, "POST", "/v3/auth/tokens", { body });
      expect(res.status, JSON.stringify(body)).toBe(400);
      expect(res.body.error).toMatchObject({ code: 400, title: "Bad Request" });
    }
    for (const [path, body] of [
      ["/v3/users", { user: { name: 5 } }],
      ["/v3/users", { user: { name: "n\u0000" } }],
      ["/v3/projects", { project: {} }],
      ["/v3/projects", { project: { name: "p", domain_id: "no-such-domain" } }],
      ["/v3/roles", []],
      ["/v3/endpoints", { endpoint: { service_id: "x", interface: "weird", url: "http://a" } }],
      ["/v3/users", { user: { name: "extra-nul", email: "a\u0000b" } }],
    ] as const) {
      const res = await call(url, "POST", path, { token: admin, body });
      expect([400, 404], `${path} ${JSON.stringify(body)}`).toContain(res.status);
    }
    expect((await call(url, "GET", "/v3/users/%ZZ", { token: admin })).status).toBe(400);
    expect([400, 404]).toContain((await call(url, "GET", "/v3/users/a%00b", { token: admin })).status);
    expect((await call(url, "GET", "/v3/nothing-here", { token: admin })).status).toBe(404);
    expect((await call(url, "PUT", "/v3/users", { token: admin, body: {} })).status).toBe(405);
    const raw = await fetch(`${url}/v3/auth/tokens`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: "{not json",
    });
    expect(raw.status).toBe(400);
  });
});

describe("identity: an expired token", () => {
  let short: IdentityUnderTest;
  beforeAll(async () => {
    short = await startIdentity({ nats: id.nats, env: { IDENTITY_TOKEN_TTL_S: "2" } });
  });
  afterAll(async () => {
    await short?.close();
  });

  it("is refused (401) once its lifetime is over, and no longer validates (404)", async () => {
    const token = await issue(short.restUrl, "admin", short.adminPassword, { system: { all: true } });
    expect((await call(short.restUrl, "GET", "/v3/users", { token })).status).toBe(200);
    const expiresAt = JSON.parse(Buffer.from(token.split(".")[1]!, "base64url").toString()).exp * 1000;
    await new Promise((r) => setTimeout(r, Math.max(0, expiresAt - Date.now()) + 50));
    const res = await call(short.restUrl, "GET", "/v3/users", { token });
    expect(res.status).toBe(401);
    expect(res.headers.get("www-authenticate")).toBe(`Keystone uri="${short.restUrl}"`);
    const fresh = await issue(short.restUrl, "admin", short.adminPassword, { system: { all: true } });
    const check = await call(short.restUrl, "GET", "/v3/auth/tokens?allow_expired=1", {
      token: fresh,
      headers: { "x-subject-token": token },
    });
    expect(check.status).toBe(404);
  });
});
