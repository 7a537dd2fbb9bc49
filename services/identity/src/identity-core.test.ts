// The identity core on a real (embedded) database: authentication by each method and scope, the
// scope rules, lockout, password hashing, and the revocations each change writes.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createLogger, type Database, isStratusError, migrationsFrom, openDatabase } from "@stratus/runtime";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Credentials, ScopeRequest } from "./auth/authenticator.js";
import { bootstrap } from "./bootstrap.js";
import { DEFAULT_DOMAIN_ID } from "./directory/domains.js";
import { IdentityCore } from "./identity-core.js";
import type { Work } from "./tokens/revocation-log.js";

let db: Database;
let core: IdentityCore;
const dataDir = mkdtempSync(join(tmpdir(), "stratus-identity-core-"));
const logger = createLogger("test", "silent");
const ADMIN_PASSWORD = "admin-secret";
const BOOTSTRAP = {
  adminPassword: ADMIN_PASSWORD,
  adminUsername: "admin",
  projectName: "admin",
  region: "RegionOne",
  endpoints: { public: "http://identity.test/v3" },
};
let adminId = "";
let projectId = "";
let adminProjectId = "";
let aliceId = "";
let roleIds: Record<string, string> = {};

const pw = (name: string, password: string): Credentials => ({
  method: "password",
  user: { name, domain: { id: DEFAULT_DOMAIN_ID } },
  password,
});
const project = (id: string): ScopeRequest => ({ kind: "project", project: { id } });

async function refusedKind(p: Promise<unknown>): Promise<string> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  if (!isStratusError(err)) throw new Error(`expected a refusal, got ${String(err)}`);
  return err.kind;
}

const newProject = (w: Work, name: string, enabled = true) =>
  core.dir.projects.create(w, {
    name,
    domainId: DEFAULT_DOMAIN_ID,
    description: "",
    enabled,
    tags: [],
    extra: {},
  });
const newUser = (w: Work, name: string, password: string, defaultProjectId?: string) =>
  core.dir.users.create(w, {
    name,
    domainId: DEFAULT_DOMAIN_ID,
    enabled: true,
    defaultProjectId,
    extra: {},
    password,
  });

beforeAll(async () => {
  db = await openDatabase({
    service: "identity",
    dataDir,
    migrations: migrationsFrom(new URL("../migrations", import.meta.url).pathname),
    logger,
  });
  core = await IdentityCore.open(db, {
    tokenTtlSeconds: 3600,
    keyRotationMs: 0,
    lockout: { failureAttempts: 3, durationMs: 60_000 },
    hashCost: { memoryKib: 1024, timeCost: 1 },
    logger,
  });
  await bootstrap(core.dir, core.hasher, BOOTSTRAP, logger);
  const { dir } = core;
  adminId = (await dir.users.credentialsByName("admin", DEFAULT_DOMAIN_ID))!.id;
  adminProjectId = (await dir.projects.findByName("admin", DEFAULT_DOMAIN_ID))!.id;
  roleIds = Object.fromEntries((await dir.roles.list()).map((r) => [r.name, r.id]));
  await dir.change(async (w) => {
    projectId = (await newProject(w, "demo")).id;
    aliceId = (await newUser(w, "alice", "alice-pw", projectId)).id;
    await dir.assignments.grant(w, aliceId, { type: "project", id: projectId }, roleIds.member!);
  });
});
afterAll(async () => {
  await core?.close();
  await db?.close();
  rmSync(dataDir, { recursive: true, force: true });
});

describe("identity core", () => {
  it("bootstrap is idempotent and makes admin ⇒ member ⇒ reader", async () => {
    await bootstrap(core.dir, core.hasher, BOOTSTRAP, logger);
    expect((await core.dir.roles.list()).map((r) => r.name)).toEqual(["admin", "member", "reader"]);
    expect((await core.dir.users.list({ name: "admin" })).length).toBe(1);
    const roles = await core.dir.assignments.effectiveRoles(adminId, { type: "system" });
    expect(roles.map((r) => r.name)).toEqual(["admin", "member", "reader"]);
    expect((await core.dir.catalog.entries())[0]!.endpoints.map((e) => e.url)).toEqual([
      "http://identity.test/v3",
    ]);
  });

  it("issues project-scoped tokens by password with the implied roles, and validates them", async () => {
    const r = await core.authenticator.authenticate(pw("admin", ADMIN_PASSWORD), project(adminProjectId));
    expect(r.identity.roles).toEqual(["admin", "member", "reader"]);
    expect(r.identity.methods).toEqual(["password"]);
    const back = await core.tokens.validate(r.token);
    expect(back).toMatchObject({
      userId: adminId,
      projectId: adminProjectId,
      projectName: "admin",
      system: false,
    });
    expect(back.expiresAt.getTime() - back.issuedAt.getTime()).toBeLessThanOrEqual(3600_000);
  });

  it("scopes to the default project when asked for no scope, unscoped when asked", async () => {
    const byDefault = await core.authenticator.authenticate(pw("alice", "alice-pw"), { kind: "default" });
    expect(byDefault.identity.projectId).toBe(projectId);
    expect(byDefault.identity.roles).toEqual(["member", "reader"]);
    const unscoped = await core.authenticator.authenticate(pw("alice", "alice-pw"), { kind: "unscoped" });
    expect(unscoped.identity).toMatchObject({ projectId: "", domainId: "", system: false, roles: [] });
  });

  it("issues domain- and system-scoped tokens only to users holding a role there", async () => {
    const system = await core.authenticator.authenticate(pw("admin", ADMIN_PASSWORD), { kind: "system" });
    expect(system.identity.system).toBe(true);
    expect(
      await refusedKind(core.authenticator.authenticate(pw("alice", "alice-pw"), { kind: "system" })),
    ).toBe("unauthorized");
    const domain: ScopeRequest = { kind: "domain", domain: { name: "Default" } };
    expect(await refusedKind(core.authenticator.authenticate(pw("alice", "alice-pw"), domain))).toBe(
      "unauthorized",
    );
    await core.dir.change((w) =>
      core.dir.assignments.grant(w, aliceId, { type: "domain", id: DEFAULT_DOMAIN_ID }, roleIds.reader!),
    );
    const scoped = await core.authenticator.authenticate(pw("alice", "alice-pw"), domain);
    expect(scoped.identity).toMatchObject({ domainId: DEFAULT_DOMAIN_ID, roles: ["reader"] });
  });

  it("refuses a project without a role on it, a disabled project, an unknown project", async () => {
    const alice = pw("alice", "alice-pw");
    expect(await refusedKind(core.authenticator.authenticate(alice, project(adminProjectId)))).toBe(
      "unauthorized",
    );
    expect(await refusedKind(core.authenticator.authenticate(alice, project("nope")))).toBe("unauthorized");
    const off = await core.dir.change(async (w) => {
      const p = await newProject(w, "off", false);
      await core.dir.assignments.grant(w, aliceId, { type: "project", id: p.id }, roleIds.member!);
      return p;
    });
    expect(await refusedKind(core.authenticator.authenticate(alice, project(off.id)))).toBe("unauthorized");
  });

  it("rescopes with the token method: same expiry at most, the parent's audit id kept", async () => {
    const unscoped = await core.authenticator.authenticate(pw("alice", "alice-pw"), { kind: "unscoped" });
    const scoped = await core.authenticator.authenticate(
      { method: "token", token: unscoped.token },
      project(projectId),
    );
    expect(scoped.identity.methods).toEqual(["token", "password"]);
    expect(scoped.identity.auditIds[1]).toBe(unscoped.identity.auditIds[0]);
    expect(scoped.identity.expiresAt.getTime()).toBeLessThanOrEqual(unscoped.identity.expiresAt.getTime());
    expect(
      await refusedKind(
        core.authenticator.authenticate({ method: "token", token: "not.a.token" }, project(projectId)),
      ),
    ).toBe("unauthorized");
  });

  it("authenticates an application credential on its project with its roles, refusing a scope", async () => {
    const { credential, secret } = await core.dir.change((w) =>
      core.dir.applicationCredentials.create(
        w,
        {
          userId: aliceId,
          projectId,
          name: "ci",
          description: "",
          roleIds: [roleIds.reader!],
          unrestricted: false,
          expiresAt: undefined,
        },
        undefined,
      ),
    );
    const stored = await db.query<{ secret_hash: string }>("SELECT secret_hash FROM application_credentials");
    expect(stored[0]!.secret_hash).toMatch(/^\$argon2id\$/);
    expect(stored[0]!.secret_hash).not.toContain(secret);
    const byId: Credentials = { method: "application_credential", credential: { id: credential.id }, secret };
    const r = await core.authenticator.authenticate(byId, { kind: "default" });
    expect(r.identity).toMatchObject({
      projectId,
      roles: ["reader"],
      applicationCredentialId: credential.id,
    });
    const byName: Credentials = {
      method: "application_credential",
      credential: { name: "ci", user: { id: aliceId } },
      secret,
    };
    expect((await core.authenticator.authenticate(byName, { kind: "default" })).identity.userId).toBe(
      aliceId,
    );
    expect(await refusedKind(core.authenticator.authenticate(byId, project(projectId)))).toBe("unauthorized");
    const wrong: Credentials = { ...byId, secret: `${secret}x` };
    expect(await refusedKind(core.authenticator.authenticate(wrong, { kind: "default" }))).toBe(
      "unauthorized",
    );
    // A token from it cannot be rescoped.
    expect(
      await refusedKind(
        core.authenticator.authenticate({ method: "token", token: r.token }, project(projectId)),
      ),
    ).toBe("unauthorized");
  });

  it("stores passwords as argon2id and refuses an unknown user and a wrong password alike", async () => {
    const [row] = await db.query<{ password_hash: string }>("SELECT password_hash FROM users WHERE id = $1", [
      aliceId,
    ]);
    expect(row!.password_hash).toMatch(/^\$argon2id\$v=19\$m=1024,t=1,p=1\$/);
    const unknown = await refusedKind(
      core.authenticator.authenticate(pw("nobody", "x"), { kind: "unscoped" }),
    );
    expect(unknown).toBe("unauthorized");
  });

  it("locks a user after the configured failures, whatever the password, and counts again later", async () => {
    await core.dir.change((w) => newUser(w, "bob", "bob-pw"));
    for (let i = 0; i < 3; i++) {
      expect(
        await refusedKind(core.authenticator.authenticate(pw("bob", "wrong"), { kind: "unscoped" })),
      ).toBe("unauthorized");
    }
    expect(
      await refusedKind(core.authenticator.authenticate(pw("bob", "bob-pw"), { kind: "unscoped" })),
    ).toBe("unauthorized");
    // The lock's duration passed (its last failure moved back in time): the right password works.
    await db.query("UPDATE users SET failed_auth_at = now() - interval '61 seconds' WHERE name = 'bob'");
    expect(
      (await core.authenticator.authenticate(pw("bob", "bob-pw"), { kind: "unscoped" })).identity.userName,
    ).toBe("bob");
    const [after] = await db.query<{ failed_auth_count: number }>(
      "SELECT failed_auth_count FROM users WHERE name = 'bob'",
    );
    expect(after!.failed_auth_count).toBe(0);
  });

  it("revokes a user's tokens when its password changes or it is disabled, not the next ones", async () => {
    const before = await core.authenticator.authenticate(pw("alice", "alice-pw"), project(projectId));
    await core.dir.change((w) => core.dir.users.update(w, aliceId, { password: "alice-pw2" }));
    expect(await refusedKind(core.tokens.validate(before.token))).toBe("unauthorized");
    const after = await core.authenticator.authenticate(pw("alice", "alice-pw2"), project(projectId));
    expect((await core.tokens.validate(after.token)).userId).toBe(aliceId);
    expect(
      await refusedKind(core.authenticator.authenticate(pw("alice", "alice-pw"), project(projectId))),
    ).toBe("unauthorized");
    await core.dir.change((w) => core.dir.users.update(w, aliceId, { enabled: false }));
    expect(await refusedKind(core.tokens.validate(after.token))).toBe("unauthorized");
    expect(
      await refusedKind(core.authenticator.authenticate(pw("alice", "alice-pw2"), project(projectId))),
    ).toBe("unauthorized");
    await core.dir.change((w) => core.dir.users.update(w, aliceId, { enabled: true }));
  });

  it("revokes tokens on the project when the role is removed, and the project's when it is disabled", async () => {
    const carol = await core.dir.change(async (w) => {
      const u = await newUser(w, "carol", "carol-pw");
      await core.dir.assignments.grant(w, u.id, { type: "project", id: projectId }, roleIds.member!);
      return u;
    });
    const t1 = await core.authenticator.authenticate(pw("carol", "carol-pw"), project(projectId));
    const unscoped = await core.authenticator.authenticate(pw("carol", "carol-pw"), { kind: "unscoped" });
    await core.dir.change((w) =>
      core.dir.assignments.revoke(w, carol.id, { type: "project", id: projectId }, roleIds.member!),
    );
    expect(await refusedKind(core.tokens.validate(t1.token))).toBe("unauthorized");
    expect((await core.tokens.validate(unscoped.token)).userId).toBe(carol.id);
    const revoked = await core.revocations.relevant();
    expect(revoked.some((r) => r.userId === carol.id && r.projectId === projectId)).toBe(true);
  });
});
