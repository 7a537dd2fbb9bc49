// The deployment's credentials and bootstrap step, end to end against a real identity: the files
// deploy-credentials makes are the passwords the bootstrap Job gives the service users, and a
// service logs in with its file; running the Job again changes nothing.
import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { LOGIN_SERVICES } from "@stratus/runtime/auth";
import { type IdentityUnderTest, repoRoot, startIdentity } from "@stratus/runtime/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const run = promisify(execFile);
let identity: IdentityUnderTest;
let dir: string;

beforeAll(async () => {
  identity = await startIdentity();
  dir = mkdtempSync(join(tmpdir(), "stratus-credentials-"));
});
afterAll(async () => {
  await identity?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const login = async (user: string, password: string) =>
  (
    await fetch(`${identity.restUrl}/v3/auth/tokens`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        auth: {
          identity: {
            methods: ["password"],
            password: { user: { name: user, domain: { id: "default" }, password } },
          },
          scope: { project: { name: "service", domain: { id: "default" } } },
        },
      }),
    })
  ).status;

const bootstrap = () =>
  run(process.execPath, ["--import", "tsx", join(repoRoot, "scripts", "bootstrap-service-users.ts")], {
    cwd: repoRoot,
    env: {
      ...process.env,
      IDENTITY_URL: identity.restUrl,
      ADMIN_PASSWORD_FILE: join(dir, "admin.password"),
      SERVICE_CREDENTIALS_DIR: dir,
    },
  });

describe("deploy-credentials and the bootstrap Job", () => {
  it("make private credential files, keep them on a second run, and write the NATS chart's values", async () => {
    const make = () =>
      run(process.execPath, ["--import", "tsx", join(repoRoot, "scripts", "deploy-credentials.ts"), dir], {
        cwd: repoRoot,
      });
    await make();
    const first = readFileSync(join(dir, "conductor.password"), "utf8");
    const seed = readFileSync(join(dir, "compute-agent.nk"), "utf8");
    await make();
    expect(readFileSync(join(dir, "conductor.password"), "utf8")).toBe(first);
    expect(readFileSync(join(dir, "compute-agent.nk"), "utf8")).toBe(seed);
    expect(statSync(join(dir, "conductor.password")).mode & 0o077).toBe(0);
    const values = readFileSync(join(dir, "nats-values.yaml"), "utf8");
    expect(values.match(/- nkey: U[A-Z2-7]{55}$/gm)).toHaveLength(6);
    expect(seed.startsWith("SU")).toBe(true);
  });

  it("gives every service user its file's password, and a second run changes nothing", async () => {
    // The identity's admin is the one this identity bootstrapped.
    writeFileSync(join(dir, "admin.password"), `${identity.adminPassword}\n`, { mode: 0o600 });
    for (const service of LOGIN_SERVICES) {
      expect(
        await login(`stratus-${service}`, readFileSync(join(dir, `${service}.password`), "utf8").trim()),
      ).toBe(401);
    }
    await bootstrap();
    await bootstrap();
    for (const service of LOGIN_SERVICES) {
      const password = readFileSync(join(dir, `${service}.password`), "utf8").trim();
      expect(await login(`stratus-${service}`, password), service).toBe(201);
      expect(await login(`stratus-${service}`, `${password}x`), service).toBe(401);
    }
  });
});
