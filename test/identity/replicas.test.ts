// Two identity replicas on one PostgreSQL database are interchangeable (docs/deployment.md: the
// identity's Deployment has two replicas behind one Service): a user made at one logs in at the
// other, a token from either validates at both, a token revoked at one is refused by the other
// within a second (the revocation reaches it over NATS), and failed password checks at both count
// toward one lockout. Needs the tests' PostgreSQL server, as the cluster tests do: without it the
// test fails rather than passing unrun.
import {
  createTempDatabase,
  freePort,
  type IdentityUnderTest,
  type ServiceProcess,
  startIdentity,
  startService,
  type TempDatabase,
} from "@stratus/runtime/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { call, issue, passwordAuth, within } from "./helpers.js";

let db: TempDatabase | undefined;
let first: IdentityUnderTest | undefined;
let second: ServiceProcess | undefined;
/** The REST URLs of replica 0 and replica 1. */
let urls: [string, string] = ["", ""];
let admin = "";
let projectId = "";

beforeAll(async () => {
  db = await createTempDatabase("stratus_identity_replicas");
  first = await startIdentity({
    env: { DATABASE_URL: db.url, IDENTITY_LOCKOUT_FAILURE_ATTEMPTS: "3", LOG_LEVEL: "warn" },
  });
  const restPort = await freePort();
  // The second replica is not bootstrapped again: the first made the admin.
  const { IDENTITY_BOOTSTRAP_ADMIN_PASSWORD: _bootstrapped, ...env } = first.env;
  second = await startService("identity", {
    ...env,
    PORT: String(await freePort()),
    IDENTITY_PORT: String(restPort),
    IDENTITY_PUBLIC_URL: `http://127.0.0.1:${restPort}`,
  });
  urls = [first.restUrl, `http://127.0.0.1:${restPort}`];
  admin = await issue(urls[0], "admin", first.adminPassword, {
    project: { name: "admin", domain: { name: "Default" } },
  });
  projectId = (
    await call(urls[0], "POST", "/v3/projects", { token: admin, body: { project: { name: "rep" } } })
  ).body.project.id;
}, 120_000);
afterAll(async () => {
  await second?.stop();
  await first?.close();
  await db?.drop();
});

let n = 0;
/** A member of the test project, made at replica `at`. */
async function member(at: 0 | 1): Promise<{ name: string; password: string }> {
  n++;
  const name = `rep-user-${n}`;
  const password = `pw-${n}`;
  const user = await call(urls[at], "POST", "/v3/users", {
    token: admin,
    body: { user: { name, password } },
  });
  expect(user.status).toBe(201);
  const role = (await call(urls[at], "GET", "/v3/roles?name=member", { token: admin })).body.roles[0].id;
  const granted = await call(
    urls[at],
    "PUT",
    `/v3/projects/${projectId}/users/${user.body.user.id}/roles/${role}`,
    { token: admin },
  );
  expect(granted.status).toBe(204);
  return { name, password };
}

/** The status replica `at` answers when asked to validate `token` (200 valid, 404 not). */
async function validation(at: 0 | 1, token: string): Promise<number> {
  return (
    await call(urls[at], "GET", "/v3/auth/tokens", { token: admin, headers: { "x-subject-token": token } })
  ).status;
}

describe("identity: two replicas on one database", () => {
  it("logs in at either replica a user made at the other; each validates the other's tokens", async () => {
    for (const [made, login] of [
      [0, 1],
      [1, 0],
    ] as const) {
      const u = await member(made);
      const token = await issue(urls[login], u.name, u.password, { project: { id: projectId } });
      expect(await validation(0, token)).toBe(200);
      expect(await validation(1, token)).toBe(200);
    }
  });

  it("refuses at one replica, within a second, a token revoked at the other", async () => {
    for (const [revokedAt, checkedAt] of [
      [0, 1],
      [1, 0],
    ] as const) {
      const u = await member(0);
      const token = await issue(urls[0], u.name, u.password, { project: { id: projectId } });
      const bystander = await issue(urls[1], u.name, u.password, { project: { id: projectId } });
      expect(await validation(checkedAt, token)).toBe(200);
      const revoked = await call(urls[revokedAt], "DELETE", "/v3/auth/tokens", {
        token: admin,
        headers: { "x-subject-token": token },
      });
      expect(revoked.status).toBe(204);
      await within(1000, "the revocation reaching the other replica", async () => {
        return (await validation(checkedAt, token)) === 404;
      });
      expect(await validation(checkedAt, bystander)).toBe(200);
    }
  });

  it("counts failed password checks at both replicas toward one lockout", async () => {
    const u = await member(0);
    for (const at of [0, 1, 0] as const) {
      const res = await call(urls[at], "POST", "/v3/auth/tokens", { body: passwordAuth(u.name, "wrong") });
      expect(res.status).toBe(401);
    }
    // Three failures lock the user: the right password is refused at either replica.
    for (const at of [1, 0] as const) {
      const res = await call(urls[at], "POST", "/v3/auth/tokens", { body: passwordAuth(u.name, u.password) });
      expect(res.status).toBe(401);
    }
  });
});
