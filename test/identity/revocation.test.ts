// Revocation reaching another process: a LocalTokenValidator here (keys and revocations over the
// IdentityService RPC, later revocations over NATS) refuses a token within a second of the change
// that revoked it at the identity service, for each kind of change; tokens it does not match go on.
import { createLogger, EventBus, isStratusError } from "@stratus/runtime";
import { identityServiceSource, LocalTokenValidator } from "@stratus/runtime/auth";
import { type IdentityUnderTest, startIdentity } from "@stratus/runtime/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { call, issue, within } from "./helpers.js";

let id: IdentityUnderTest;
let url = "";
let admin = "";
let memberRole = "";
let bus: EventBus;
let validator: LocalTokenValidator;
const logger = createLogger("test", "silent");

beforeAll(async () => {
  id = await startIdentity();
  url = id.restUrl;
  admin = await issue(url, "admin", id.adminPassword, { system: { all: true } });
  memberRole = (await call(url, "GET", "/v3/roles?name=member", { token: admin })).body.roles[0].id;
  bus = new EventBus(await id.nats.connect("tools"), logger);
  validator = new LocalTokenValidator(identityServiceSource(id.rpcUrl, bus), { logger });
  await validator.start();
});
afterAll(async () => {
  await validator?.close();
  await bus?.close();
  await id?.close();
});

let n = 0;
/** A fresh project and a member user of it, with a project-scoped token. */
async function member(): Promise<{ userId: string; projectId: string; token: string; password: string }> {
  n++;
  const project = await call(url, "POST", "/v3/projects", {
    token: admin,
    body: { project: { name: `rp${n}` } },
  });
  const password = `pw-${n}`;
  const user = await call(url, "POST", "/v3/users", {
    token: admin,
    body: { user: { name: `ru${n}`, password } },
  });
  const projectId = project.body.project.id;
  const userId = user.body.user.id;
  await call(url, "PUT", `/v3/projects/${projectId}/users/${userId}/roles/${memberRole}`, { token: admin });
  const token = await issue(url, `ru${n}`, password, { project: { id: projectId } });
  return { userId, projectId, token, password };
}

async function accepted(token: string): Promise<boolean> {
  try {
    await validator.validate(token);
    return true;
  } catch (err) {
    if (isStratusError(err, "unauthorized")) return false;
    throw err;
  }
}

/** The change revokes `token` in this process within a second; `bystander` stays valid. */
async function revokedWithinASecond(token: string, change: () => Promise<number>, bystander: string) {
  expect(await accepted(token)).toBe(true);
  expect(await accepted(bystander)).toBe(true);
  const status = await change();
  expect(status).toBeLessThan(300);
  const took = await within(1000, "revocation reaching the validator", async () => !(await accepted(token)));
  expect(took).toBeLessThan(1000);
  expect(await accepted(bystander)).toBe(true);
}

describe("identity: revocation reaches another process's LocalTokenValidator", () => {
  it("validates the identity's tokens locally with what they carry", async () => {
    const m = await member();
    const got = await validator.validate(m.token);
    expect(got).toMatchObject({ userId: m.userId, projectId: m.projectId, roles: ["member", "reader"] });
  });

  it("token deleted", async () => {
    const a = await member();
    const other = await issue(url, `ru${n}`, a.password, { project: { id: a.projectId } });
    await revokedWithinASecond(
      a.token,
      async () =>
        (
          await call(url, "DELETE", "/v3/auth/tokens", {
            token: admin,
            headers: { "x-subject-token": a.token },
          })
        ).status,
      other,
    );
  });

  it("user disabled", async () => {
    const [a, b] = [await member(), await member()];
    await revokedWithinASecond(
      a.token,
      async () =>
        (
          await call(url, "PATCH", `/v3/users/${a.userId}`, {
            token: admin,
            body: { user: { enabled: false } },
          })
        ).status,
      b.token,
    );
  });

  it("password changed by the user", async () => {
    const [a, b] = [await member(), await member()];
    await revokedWithinASecond(
      a.token,
      async () =>
        (
          await call(url, "POST", `/v3/users/${a.userId}/password`, {
            body: { user: { password: "brand-new", original_password: a.password } },
          })
        ).status,
      b.token,
    );
  });

  it("role assignment removed", async () => {
    const [a, b] = [await member(), await member()];
    await revokedWithinASecond(
      a.token,
      async () =>
        (
          await call(url, "DELETE", `/v3/projects/${a.projectId}/users/${a.userId}/roles/${memberRole}`, {
            token: admin,
          })
        ).status,
      b.token,
    );
  });

  it("project disabled", async () => {
    const [a, b] = [await member(), await member()];
    await revokedWithinASecond(
      a.token,
      async () =>
        (
          await call(url, "PATCH", `/v3/projects/${a.projectId}`, {
            token: admin,
            body: { project: { enabled: false } },
          })
        ).status,
      b.token,
    );
  });

  it("project deleted", async () => {
    const [a, b] = [await member(), await member()];
    await revokedWithinASecond(
      a.token,
      async () => (await call(url, "DELETE", `/v3/projects/${a.projectId}`, { token: admin })).status,
      b.token,
    );
  });

  it("user deleted", async () => {
    const [a, b] = [await member(), await member()];
    await revokedWithinASecond(
      a.token,
      async () => (await call(url, "DELETE", `/v3/users/${a.userId}`, { token: admin })).status,
      b.token,
    );
  });

  it("application credential deleted", async () => {
    const a = await member();
    const made = await call(url, "POST", `/v3/users/${a.userId}/application_credentials`, {
      token: a.token,
      body: { application_credential: { name: "job" } },
    });
    const { id: credId, secret } = made.body.application_credential;
    const res = await call(url, "POST", "/v3/auth/tokens", {
      body: {
        auth: {
          identity: { methods: ["application_credential"], application_credential: { id: credId, secret } },
        },
      },
    });
    const fromCred = res.headers.get("x-subject-token")!;
    await revokedWithinASecond(
      fromCred,
      async () =>
        (
          await call(url, "DELETE", `/v3/users/${a.userId}/application_credentials/${credId}`, {
            token: a.token,
          })
        ).status,
      a.token,
    );
  });

  it("accepts tokens signed by a rotated key (asks for the keys again) and the old key's tokens", async () => {
    const before = await member();
    // At start the identity replaces a key older than the rotation period (here: 1 s).
    await id.restart({ IDENTITY_KEY_ROTATION_S: "1" });
    const after = await issue(url, `ru${n}`, before.password, { project: { id: before.projectId } });
    const kid = (t: string) => JSON.parse(Buffer.from(t.split(".")[0]!, "base64url").toString()).kid;
    expect(kid(after)).not.toBe(kid(before.token));
    await within(3000, "the new key fetched", () => accepted(after));
    expect(await accepted(before.token)).toBe(true);
  });
});
