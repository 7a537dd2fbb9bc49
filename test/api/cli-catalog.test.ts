// Acceptance with the ordinary OpenStack workflow: the unmodified `openstack` command (Debian's
// python-openstackclient) with a clouds.yaml written by the code `npm start` uses (password auth,
// no endpoint given: every endpoint comes from the catalog in the token), against the whole mesh.
import { execFile } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import {
  cloudsYaml,
  ensureDemoUser,
  readPasswordFile,
  registerEndpoints,
  stratusCatalog,
  stratusClouds,
} from "@stratus/runtime/auth";
import type { Mesh } from "@stratus/runtime/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createAutoPrerequisites, startApiMesh } from "./helpers.js";

const run = promisify(execFile);
const haveCli = existsSync("/usr/bin/openstack");
// In CI (CI=true, as .ci/run sets it) the CLI must be there: a missing CLI fails instead of skipping.
if (!haveCli && process.env.CI === "true") {
  throw new Error("CI=true but python3-openstackclient is not installed (/usr/bin/openstack)");
}
if (!haveCli) console.warn("python3-openstackclient is not installed: the clouds.yaml acceptance is skipped");

const IMAGE = "cirros-0.6.2-x86_64-disk";
let mesh: Mesh;
let dir = "";
let cloudsFile = "";

/** `openstack --os-cloud <cloud> …` with OS_CLIENT_CONFIG_FILE and nothing else from the environment. */
async function os(cloud: string, ...args: string[]): Promise<string> {
  const { stdout } = await run("/usr/bin/openstack", ["--os-cloud", cloud, ...args], {
    env: {
      PATH: process.env.PATH ?? "/usr/bin:/bin",
      HOME: dir,
      OS_CLIENT_CONFIG_FILE: cloudsFile,
    },
    timeout: 90_000,
  });
  return stdout;
}
const osJson = async (cloud: string, ...args: string[]) => JSON.parse(await os(cloud, ...args, "-f", "json"));

describe.skipIf(!haveCli)("the openstack CLI with the generated clouds.yaml", () => {
  beforeAll(async () => {
    const started = await startApiMesh();
    mesh = started.mesh;
    // --nic auto's prerequisites: a default external network and subnet pool.
    await createAutoPrerequisites(started.net);
    dir = mkdtempSync(join(tmpdir(), "stratus-clouds-"));
    const admin = mesh.identity.admin;
    // The catalog npm start registers: the Networking API on its own port.
    await registerEndpoints(
      admin,
      "RegionOne",
      stratusCatalog({
        identity: mesh.identity.restUrl,
        compute: mesh.apiUrl,
        network: mesh.networkApiUrl,
      }),
    );
    const demoPasswordFile = join(dir, "demo.password");
    await ensureDemoUser(admin, demoPasswordFile);
    cloudsFile = join(dir, "clouds.yaml");
    writeFileSync(
      cloudsFile,
      cloudsYaml(
        stratusClouds({
          authUrl: `${mesh.identity.restUrl}/v3`,
          region: "RegionOne",
          adminPassword: mesh.identity.adminPassword,
          demoPassword: readPasswordFile(demoPasswordFile),
        }),
      ),
      { mode: 0o600 },
    );
  }, 240_000);
  afterAll(async () => {
    await mesh?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("token issue, and the catalog lists identity, compute, network and image", async () => {
    const token = await osJson("stratus-demo", "token", "issue");
    expect(token.id).toMatch(/^[\w-]+\.[\w-]+\.[\w-]+$/);
    expect(token.project_id).toMatch(/^[0-9a-f]{32}$/);
    const catalog = await osJson("stratus-demo", "catalog", "list");
    expect(catalog.map((s: { Type: string }) => s.Type).sort()).toEqual([
      "compute",
      "identity",
      "image",
      "network",
    ]);
  });

  it("server create, list, show and delete as the demo user; network list", async () => {
    const created = await osJson(
      "stratus-demo",
      "--os-compute-api-version",
      "2.37",
      "server",
      "create",
      "--flavor",
      "m1.tiny",
      "--image",
      IMAGE,
      "--nic",
      "auto",
      "--wait",
      "demo-1",
    );
    expect(created.status).toBe("ACTIVE");
    const list = await osJson("stratus-demo", "server", "list");
    expect(list.map((s: { Name: string }) => s.Name)).toEqual(["demo-1"]);
    const shown = await osJson("stratus-demo", "server", "show", "demo-1");
    expect(shown.id).toBe(created.id);
    expect(JSON.stringify(shown.addresses)).toMatch(/10\.128\.\d+\.\d+/);
    // The admin sees the demo project's server; the demo user's list is its project's.
    const all = await osJson("stratus-admin", "server", "list", "--all-projects");
    expect(all.map((s: { ID: string }) => s.ID)).toContain(created.id);

    const networks = await osJson("stratus-demo", "network", "list");
    expect(networks.length).toBeGreaterThan(0);

    await os("stratus-demo", "server", "delete", "--wait", "demo-1");
    expect(await osJson("stratus-demo", "server", "list")).toEqual([]);
  }, 180_000);

  it("as admin: project create, user create, role add, application credential create", async () => {
    const project = await osJson("stratus-admin", "project", "create", "cli-made");
    expect(project).toMatchObject({ name: "cli-made", domain_id: "default", enabled: true });
    const user = await osJson(
      "stratus-admin",
      "user",
      "create",
      "--password",
      "cli-made-pw",
      "cli-made-user",
    );
    expect(user).toMatchObject({ name: "cli-made-user", domain_id: "default" });
    await os("stratus-admin", "role", "add", "--project", "cli-made", "--user", "cli-made-user", "member");
    const assignments = await osJson(
      "stratus-admin",
      "role",
      "assignment",
      "list",
      "--user",
      "cli-made-user",
      "--names",
    );
    expect(assignments.map((a: { Role: string; Project: string }) => [a.Role, a.Project])).toEqual([
      ["member", "cli-made@Default"],
    ]);
    const credential = await osJson("stratus-admin", "application", "credential", "create", "cli-made-cred");
    expect(credential.name).toBe("cli-made-cred");
    expect(credential.secret.length).toBeGreaterThan(40);
    // A demo user may not administer the identity.
    await expect(os("stratus-demo", "project", "create", "not-mine")).rejects.toThrow(/403|not authorized/i);
  }, 120_000);
});
