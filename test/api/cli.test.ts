// Acceptance with a real client: the unmodified `openstack` command (python-openstackclient from
// Debian) drives Stratus through the compute API, with every service running as a process. Each
// command carries a real token of the mesh's identity and names the compute endpoint; the
// clouds.yaml workflow (password auth and the catalog) is cli-catalog.test.ts's.
import { existsSync } from "node:fs";
import type { Mesh } from "@stratus/runtime/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  asAdmin,
  createAutoPrerequisites,
  createRoutedNetwork,
  type NetworkClient,
  openstack,
  projectId,
  startApiMesh,
  waitServer,
} from "./helpers.js";

const IMAGE = "cirros-0.6.2-x86_64-disk";
const haveCli = existsSync("/usr/bin/openstack");
// In CI (CI=true, as .ci/run sets it) the CLI must be there: a missing CLI fails instead of skipping.
if (!haveCli && process.env.CI === "true") {
  throw new Error("CI=true but python3-openstackclient is not installed (/usr/bin/openstack)");
}
if (!haveCli) console.warn("python3-openstackclient is not installed: the CLI acceptance is skipped");

let mesh: Mesh;
let net: NetworkClient;
let routedId = "";

describe.skipIf(!haveCli)("the openstack CLI against Stratus", () => {
  beforeAll(async () => {
    ({ mesh, net } = await startApiMesh());
    await createAutoPrerequisites(net);
    // Project p2 has its own routed network; project p1 has none (so --nic auto allocates one).
    routedId = (await createRoutedNetwork(net, "p2", "p2-routed")).id;
  });
  afterAll(async () => {
    await mesh?.close();
  });

  const os = (token: string, version: string, ...args: string[]) =>
    openstack(mesh.apiUrl, token, version, args);
  const json = (r: { stdout: string; stderr: string; code: number }) => {
    expect(r.stderr + (r.code ? ` (exit ${r.code})` : "")).not.toMatch(/exit|Error|Exception/);
    return JSON.parse(r.stdout);
  };

  /** `openstack server create --flavor m1.tiny --image … --nic <nic> <name>`, as JSON. */
  const create = async (token: string, nic: string, name: string) =>
    json(
      await os(
        token,
        "2.37",
        "server",
        "create",
        "--flavor",
        "m1.tiny",
        "--image",
        IMAGE,
        "--nic",
        nic,
        name,
        "-f",
        "json",
      ),
    );

  it("flavor list shows the m1 flavors", async () => {
    const flavors = json(await os("alice:p1", "2.37", "flavor", "list", "-f", "json"));
    expect(flavors.map((f: any) => f.Name)).toEqual([
      "m1.tiny",
      "m1.small",
      "m1.medium",
      "m1.large",
      "m1.xlarge",
    ]);
  });

  it("server create --nic auto makes the project's topology and boots on it", async () => {
    const created = await create("alice:p1", "auto", "auto-1");
    const server = await waitServer(mesh.apiUrl, created.id, "alice:p1");
    expect(server.status).toBe("ACTIVE");
    const shown = json(await os("alice:p1", "2.37", "server", "show", "auto-1", "-f", "json"));
    expect(shown.status).toBe("ACTIVE");
    // The auto-allocated network's subnet comes from the default pool (10.128.0.0/16).
    expect(JSON.stringify(shown.addresses)).toMatch(/10\.128\.\d+\.\d+/);
  });

  it("server create --nic none boots without networking", async () => {
    const created = await create("alice:p1", "none", "none-1");
    const server = await waitServer(mesh.apiUrl, created.id, "alice:p1");
    expect(server.status).toBe("ACTIVE");
    expect(server.addresses).toEqual({});
  });

  it("server create --nic net-id on a routed network gets an address from its host's segment", async () => {
    const created = await create("bob:p2", `net-id=${routedId}`, "routed-1");
    await waitServer(mesh.apiUrl, created.id, "bob:p2");
    const shown = json(await os("admin:admin", "2.37", "server", "show", created.id, "-f", "json"));
    expect(shown.status).toBe("ACTIVE");
    const host: string = shown["OS-EXT-SRV-ATTR:host"];
    const ip = shown.addresses["p2-routed"][0] as string;
    // rack1 hosts sit on segment rack1 (10.1.1.0/24), rack2 hosts on rack2 (10.1.2.0/24).
    expect(ip).toMatch(host.startsWith("rack1-") ? /^10\.1\.1\./ : /^10\.1\.2\./);
  });

  it("server create --nic port-id uses the user's port; delete keeps it, unbound", async () => {
    const p2 = await projectId("p2");
    const port = (
      await asAdmin(() => net.createPort({ networkId: routedId, projectId: p2, name: "my-port" }))
    ).port!;
    const created = await create("bob:p2", `port-id=${port.id}`, "port-1");
    expect((await waitServer(mesh.apiUrl, created.id, "bob:p2")).status).toBe("ACTIVE");
    const bound = (await asAdmin(() => net.getPort({ id: port.id }))).port!;
    expect(bound.deviceId).toBe(created.id);
    expect(bound.fixedIps).toHaveLength(1);

    const list = json(await os("bob:p2", "2.37", "server", "list", "-f", "json"));
    expect(list.map((s: any) => s.Name).sort()).toEqual(["port-1", "routed-1"]);

    const del = await os("bob:p2", "2.37", "server", "delete", "--wait", "port-1");
    expect(del.code).toBe(0);
    const after = json(await os("bob:p2", "2.37", "server", "list", "-f", "json"));
    expect(after.map((s: any) => s.Name)).toEqual(["routed-1"]);
    const kept = (await asAdmin(() => net.getPort({ id: port.id }))).port!;
    expect(kept.deviceId).toBe("");
    expect(kept.bindingHostId).toBe("");
  });

  it("server list is project scoped", async () => {
    const p1 = json(await os("alice:p1", "2.37", "server", "list", "-f", "json"));
    expect(p1.map((s: any) => s.Name).sort()).toEqual(["auto-1", "none-1"]);
  });

  it("limits show --absolute: network limits at 2.35, none from 2.36", async () => {
    // The CLI also asks the volume API's /limits on the same endpoint (no microversion); read the
    // compute request's answer from --debug.
    const computeLimits = async (version: string) => {
      const r = await os("alice:p1", version, "--debug", "limits", "show", "--absolute");
      expect(r.code).toBe(0);
      const lines = r.stderr.split("\n");
      const i = lines.findIndex((l) => l.includes("python-novaclient") && l.includes("/limits"));
      const body = lines.slice(i).find((l) => l.startsWith("RESP BODY:"))!;
      return JSON.parse(body.slice("RESP BODY:".length)).limits.absolute;
    };
    const at235 = await computeLimits("2.35");
    expect(at235.maxTotalFloatingIps).toBe(50);
    expect(at235.maxSecurityGroups).toBe(10);
    expect(at235.totalInstancesUsed).toBe(2);
    const at236 = await computeLimits("2.36");
    expect(at236).not.toHaveProperty("maxTotalFloatingIps");
    expect(at236).not.toHaveProperty("maxSecurityGroups");
    expect(at236.maxTotalInstances).toBe(10);
  });
});
