// The compute API's REST edge authenticates every request with a real token of the mesh's identity
// (checked locally, revocations followed over NATS): a forged, malformed, expired or revoked token,
// or none, is a 401 with Keystone's body and where to get a token; a reader may only read; a
// member sees its own project's servers only (another's is a 404, as in Nova); an admin sees all.
// The development token `user:project` is taken only in the named insecure mode, on loopback.
import { type Mesh, spawnService, startMesh, type UserToken } from "@stratus/runtime/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { expiredToken, signedWithAnotherKey, tampered } from "../mesh-auth/helpers.js";
import { caller, rest, until, useMesh } from "./helpers.js";

const IMAGE = "a9e6c1b4-5f0d-4c36-8a57-2f4f6b1c0c01";
let mesh: Mesh;
let memberA: UserToken;
let serverA = "";
let serverB = "";

const boot = async (token: string, name: string) => {
  const r = await rest(mesh.apiUrl, "POST", "/v2.1/servers", {
    token,
    version: "2.37",
    body: { server: { name, imageRef: IMAGE, flavorRef: "1", networks: "none" } },
  });
  expect(r.status, JSON.stringify(r.body)).toBe(202);
  return r.body.server.id as string;
};

beforeAll(async () => {
  mesh = await startMesh({
    services: ["scheduler", "network-adapter", "conductor", "compute-agent", "api"],
    env: { LOG_LEVEL: "info" },
  });
  useMesh(mesh);
  memberA = await caller("alice:edge-a");
  serverA = await boot("alice:edge-a", "in-a");
  serverB = await boot("bob:edge-b", "in-b");
}, 240_000);
afterAll(async () => {
  await mesh?.close();
});

const DEV_TOKENS = {
  "the development token": "alice:edge-a",
  "the development token of admin": "admin:admin",
};
/** Sends `token` as it is (rest() would make a caller's real token of it). */
const devToken = (token: string) => ({ token: null, headers: { "x-auth-token": token } });

/** The 401 every refused token gets: Keystone's body, where to authenticate, nothing internal. */
function expectRefused(r: Awaited<ReturnType<typeof rest>>, what: string) {
  expect(r.status, what).toBe(401);
  expect(r.body, what).toEqual({
    error: {
      code: 401,
      title: "Unauthorized",
      message: "The request you have made requires authentication.",
    },
  });
  expect(r.headers.get("www-authenticate"), what).toBe(`Keystone uri="${mesh.identity.restUrl}"`);
  expect(r.headers.get("x-openstack-request-id"), what).toMatch(/^req-/);
}

describe("a token the edge refuses", () => {
  it("none, forged, malformed, expired or revoked: 401 with Keystone's body and WWW-Authenticate", async () => {
    const revoked = await mesh.token({ user: "alice", project: "edge-a", roles: ["member"] });
    await mesh.identity.admin.revokeToken(revoked.token);
    const tokens: Record<string, string | null> = {
      none: null,
      "signed with another key": await signedWithAnotherKey(memberA.token),
      "payload changed after signing": tampered(memberA.token),
      malformed: "not-a-token",
      "three dots": "a.b.c",
      revoked: revoked.token,
      expired: await expiredToken(mesh, memberA, async (token) => {
        const ok = await rest(mesh.apiUrl, "GET", "/v2.1/servers", { token });
        expect(ok.status).toBe(200);
      }),
    };
    for (const [what, token] of Object.entries(tokens)) {
      const r = await rest(mesh.apiUrl, "GET", `/v2.1/servers/${serverA}`, { token });
      expectRefused(r, what);
      expect(JSON.stringify(r.body), what).not.toMatch(/127\.0\.0\.1|\bat\s|\.ts:/);
    }
    // The old development token, as sent (not a caller of the helpers made into a real token).
    for (const [what, token] of Object.entries(DEV_TOKENS)) {
      const r = await rest(mesh.apiUrl, "GET", `/v2.1/servers/${serverA}`, devToken(token));
      expectRefused(r, what);
      expect(JSON.stringify(r.body), what).not.toMatch(/127\.0\.0\.1|\bat\s|\.ts:/);
    }
    // A refused write does nothing.
    const del = await rest(mesh.apiUrl, "DELETE", `/v2.1/servers/${serverA}`, {
      token: tampered(memberA.token),
    });
    expectRefused(del, "tampered delete");
    expect(
      (await rest(mesh.apiUrl, "GET", `/v2.1/servers/${serverA}`, { token: "alice:edge-a" })).status,
    ).toBe(200);
  }, 60_000);

  it("a revoked token is refused within a second of its revocation", async () => {
    const fresh = await mesh.token({ user: "alice", project: "edge-a", roles: ["member"] });
    const get = () => rest(mesh.apiUrl, "GET", "/v2.1/servers", { token: fresh.token });
    expect((await get()).status).toBe(200);
    await mesh.identity.admin.revokeToken(fresh.token);
    const revokedAt = Date.now();
    await until("refused after the revocation", async () => (await get()).status === 401, 5_000);
    expect(Date.now() - revokedAt).toBeLessThan(1000);
  });
});

describe("roles and projects", () => {
  it("a reader reads its project and may not write (403)", async () => {
    const list = await rest(mesh.apiUrl, "GET", "/v2.1/servers", { token: "rita:edge-a:reader" });
    expect(list.status).toBe(200);
    expect(list.body.servers.map((s: { id: string }) => s.id)).toContain(serverA);
    const create = await rest(mesh.apiUrl, "POST", "/v2.1/servers", {
      token: "rita:edge-a:reader",
      version: "2.37",
      body: { server: { name: "by-reader", imageRef: IMAGE, flavorRef: "1", networks: "none" } },
    });
    expect(create.status).toBe(403);
    expect(create.body.forbidden.code).toBe(403);
    const del = await rest(mesh.apiUrl, "DELETE", `/v2.1/servers/${serverA}`, {
      token: "rita:edge-a:reader",
    });
    expect(del.status).toBe(403);
    expect(
      (await rest(mesh.apiUrl, "GET", `/v2.1/servers/${serverA}`, { token: "alice:edge-a" })).status,
    ).toBe(200);
  });

  it("a member of project A gets 404 for project B's server, and lists A's only", async () => {
    expect(
      (await rest(mesh.apiUrl, "GET", `/v2.1/servers/${serverB}`, { token: "alice:edge-a" })).status,
    ).toBe(404);
    const del = await rest(mesh.apiUrl, "DELETE", `/v2.1/servers/${serverB}`, { token: "alice:edge-a" });
    expect(del.status).toBe(404);
    expect(del.body.itemNotFound.code).toBe(404);
    // all_tenants is an admin's (Nova's policy): a member is refused it, and lists its project.
    const all = await rest(mesh.apiUrl, "GET", "/v2.1/servers?all_tenants=1", { token: "alice:edge-a" });
    expect(all.status).toBe(403);
    const list = await rest(mesh.apiUrl, "GET", "/v2.1/servers", { token: "alice:edge-a" });
    expect(list.status).toBe(200);
    expect(list.body.servers.map((s: { id: string }) => s.id)).toEqual([serverA]);
    expect((await rest(mesh.apiUrl, "GET", `/v2.1/servers/${serverB}`, { token: "bob:edge-b" })).status).toBe(
      200,
    );
  });

  it("an admin sees every project's servers", async () => {
    expect(
      (await rest(mesh.apiUrl, "GET", `/v2.1/servers/${serverB}`, { token: "admin:admin" })).status,
    ).toBe(200);
    const all = await rest(mesh.apiUrl, "GET", "/v2.1/servers?all_tenants=1", { token: "admin:admin" });
    const ids = all.body.servers.map((s: { id: string }) => s.id);
    expect(ids).toContain(serverA);
    expect(ids).toContain(serverB);
  });
});

describe("the insecure development mode", () => {
  it("takes user:project on loopback only when named, and warns at start", async () => {
    await mesh.stop("api");
    await mesh.restart("api", { STRATUS_INSECURE_DEV_TOKENS: "1" });
    try {
      const api = mesh.services.api!;
      expect(api.output.some((l) => l.includes('"level":"warn"') && l.includes("INSECURE"))).toBe(true);
      const dev = await rest(mesh.apiUrl, "GET", "/v2.1/servers", devToken("dev-user:dev-project"));
      expect(dev.status).toBe(200);
      // user admin is an admin: it sees project edge-b's server.
      expect((await rest(mesh.apiUrl, "GET", `/v2.1/servers/${serverB}`, devToken("admin:x"))).status).toBe(
        200,
      );
      // Real tokens still work, and are still checked.
      expect(
        (await rest(mesh.apiUrl, "GET", `/v2.1/servers/${serverA}`, { token: "alice:edge-a" })).status,
      ).toBe(200);
      expectRefused(
        await rest(mesh.apiUrl, "GET", "/v2.1/servers", { token: tampered(memberA.token) }),
        "tampered",
      );
    } finally {
      await mesh.stop("api");
      await mesh.restart("api");
    }
    expectRefused(
      await rest(mesh.apiUrl, "GET", "/v2.1/servers", devToken("dev-user:dev-project")),
      "dev token",
    );
  }, 120_000);

  it("refuses to start on a non-loopback address", async () => {
    const p = spawnService("api", {
      ...mesh.env,
      ...mesh.identity.serviceEnv("api"),
      HOST: "0.0.0.0",
      STRATUS_INSECURE_DEV_TOKENS: "1",
      PORT: "0",
      API_PORT: "0",
    });
    const code = await p.exited;
    expect(code).toBe(2);
    expect(p.output.join("\n")).toMatch(/STRATUS_INSECURE_DEV_TOKENS=1: refused with HOST="0\.0\.0\.0"/);
  }, 30_000);
});
