// Acceptance with a real client: the unmodified `openstack` command (python-openstackclient from
// Debian) against the identity service alone, with password authentication and the catalog.
import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { promisify } from "node:util";
import { type IdentityUnderTest, startIdentity } from "@stratus/runtime/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const run = promisify(execFile);
const haveCli = existsSync("/usr/bin/openstack");
// In CI (CI=true, as .ci/run sets it) the CLI must be there: a missing CLI fails instead of skipping.
if (!haveCli && process.env.CI === "true") {
  throw new Error("CI=true but python3-openstackclient is not installed (/usr/bin/openstack)");
}

let id: IdentityUnderTest;

/** Runs the CLI as the bootstrap admin (password, project admin); the output as text. */
async function openstackText(...args: string[]): Promise<string> {
  const auth = [
    ["--os-auth-url", `${id.restUrl}/v3`],
    ["--os-username", "admin"],
    ["--os-password", id.adminPassword],
    ["--os-project-name", "admin"],
    ["--os-user-domain-name", "Default"],
    ["--os-project-domain-name", "Default"],
    ["--os-identity-api-version", "3"],
  ].flat();
  const { stdout } = await run("openstack", [...auth, ...args], {
    env: { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: process.env.HOME ?? "/tmp" },
    timeout: 60_000,
  });
  return stdout;
}

async function openstack(...args: string[]): Promise<any> {
  return JSON.parse(await openstackText(...args, "-f", "json"));
}

describe.skipIf(!haveCli)("the openstack CLI against the identity service", () => {
  beforeAll(async () => {
    id = await startIdentity();
  });
  afterAll(async () => {
    await id?.close();
  });

  it("issues a token, creates a project and a user, adds a role, makes an application credential, lists the catalog", async () => {
    const token = await openstack("token", "issue");
    expect(token.id).toMatch(/^[\w-]+\.[\w-]+\.[\w-]+$/);
    expect(token.project_id).toMatch(/^[0-9a-f]{32}$/);

    const project = await openstack("project", "create", "cli-demo");
    expect(project).toMatchObject({ name: "cli-demo", domain_id: "default", enabled: true });
    const user = await openstack("user", "create", "--password", "cli-pw", "cli-user");
    expect(user).toMatchObject({ name: "cli-user", domain_id: "default" });
    await openstackText("role", "add", "--project", "cli-demo", "--user", "cli-user", "member");
    const assignments = await openstack("role", "assignment", "list", "--user", "cli-user", "--names");
    expect(assignments.map((a: { Role: string; Project: string }) => [a.Role, a.Project])).toEqual([
      ["member", "cli-demo@Default"],
    ]);

    const credential = await openstack("application", "credential", "create", "cli-cred");
    expect(credential.name).toBe("cli-cred");
    expect(credential.secret.length).toBeGreaterThan(40);
    expect(credential.roles).toContain("admin");

    const catalog = await openstack("catalog", "list");
    expect(catalog.map((s: { Type: string }) => s.Type)).toContain("identity");
  });
});
