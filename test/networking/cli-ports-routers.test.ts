// Acceptance with a real client: the unmodified `openstack` command drives ports, routers, quotas
// and auto-allocated topologies through the Networking API together with the compute API, as
// users of the mesh's identity with password auth (a clouds.yaml written as `npm start` writes it:
// every endpoint comes from the identity's catalog, the token names the caller's project), with
// every service running as a process: a deferred port made with `port create` is bound by
// `server create --nic port-id` on the chosen host's segment, exactly as a port the conductor made;
// a fresh project's auto-allocated topology is checked, made, deleted and made again with the CLI,
// and `--nic auto` then uses it.
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Mesh } from "@stratus/runtime/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  createAutoPrerequisites,
  createRoutedNetwork,
  type NetworkClient,
  osCloud,
  projectId,
  startApiMesh,
  waitServer,
  writeCliClouds,
} from "../api/helpers.js";

const IMAGE = "cirros-0.6.2-x86_64-disk";
const haveCli = existsSync("/usr/bin/openstack");
if (!haveCli && process.env.CI === "true") {
  throw new Error("CI=true but python3-openstackclient is not installed (/usr/bin/openstack)");
}
if (!haveCli)
  console.warn("python3-openstackclient is not installed: the ports/routers CLI acceptance is skipped");

let mesh: Mesh;
let net: NetworkClient;
let dir = "";
let cloudsFile = "";

/** `openstack <args>` as `cloud` (one per user: admin, alice of p1, bob of p2, carol of p3). */
const os = (cloud: string, ...args: string[]) =>
  osCloud(cloudsFile, cloud, ["--os-compute-api-version", "2.37", ...args]);

async function json(cloud: string, ...args: string[]): Promise<any> {
  const r = await os(cloud, ...args, "-f", "json");
  if (r.code !== 0) throw new Error(`openstack ${args.join(" ")}: exit ${r.code}: ${r.stderr}${r.stdout}`);
  return JSON.parse(r.stdout);
}

describe.skipIf(!haveCli)("the openstack CLI: ports and routers on the Networking API", () => {
  beforeAll(async () => {
    ({ mesh, net } = await startApiMesh());
    dir = mkdtempSync(join(tmpdir(), "stratus-osc-"));
    // The CLI's users are not the callers of helpers.ts (those get passwords of their own).
    cloudsFile = await writeCliClouds(mesh, dir, [
      { cloud: "admin", user: "osc-admin", project: "admin", role: "admin" },
      { cloud: "alice", user: "osc-alice", project: "p1", role: "member" },
      { cloud: "bob", user: "osc-bob", project: "p2", role: "member" },
      { cloud: "carol", user: "osc-carol", project: "p3", role: "member" },
    ]);
    await createAutoPrerequisites(net);
    await createRoutedNetwork(net, "p2", "p2-routed");
    // Five services and four hosts starting on two shared cores.
  }, 400_000);
  afterAll(async () => {
    await mesh?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("port create on a routed network is deferred; server create --nic port-id binds it on its host's segment", async () => {
    const port = await json("bob", "port", "create", "--network", "p2-routed", "p1");
    expect(port).toMatchObject({ name: "p1", ip_allocation: "deferred", fixed_ips: [] });

    const created = await json(
      "bob",
      "server",
      "create",
      "--flavor",
      "m1.tiny",
      "--image",
      IMAGE,
      "--nic",
      "port-id=p1",
      "srv-p1",
    );
    const server = await waitServer(mesh.apiUrl, created.id, "bob:p2");
    expect(server.status).toBe("ACTIVE");

    const shown = await json("admin", "server", "show", created.id);
    const host: string = shown["OS-EXT-SRV-ATTR:host"];
    const bound = await json("admin", "port", "show", port.id);
    expect(bound).toMatchObject({ device_id: created.id, binding_host_id: host });
    expect(bound.device_owner).toMatch(/^compute:/);
    expect(bound.fixed_ips).toHaveLength(1);
    // rack1 hosts sit on segment rack1 (10.1.1.0/24), rack2 hosts on rack2 (10.1.2.0/24).
    expect(bound.fixed_ips[0].ip_address).toMatch(host.startsWith("rack1-") ? /^10\.1\.1\./ : /^10\.1\.2\./);
    expect(JSON.stringify(shown.addresses)).toContain(bound.fixed_ips[0].ip_address);

    const listed = await json("bob", "port", "list", "--server", "srv-p1");
    expect(listed.map((p: any) => p.ID)).toEqual([port.id]);

    // The port a server uses is not deleted from under it (Neutron would detach it).
    const del = await os("bob", "port", "delete", "p1");
    expect(del.code).not.toBe(0);
    expect(del.stderr).toMatch(/attached to server/);
  }, 240_000);

  it("router create, set --external-gateway public, add subnet, remove subnet, delete", async () => {
    const router = await json("alice", "router", "create", "r1");
    expect(router).toMatchObject({ name: "r1", project_id: await projectId("p1") });
    const set = await os("alice", "router", "set", "--external-gateway", "public", "r1");
    expect(set.code, set.stderr).toBe(0);
    const gw = (await json("alice", "router", "show", "r1")).external_gateway_info;
    expect(gw).toMatchObject({ enable_snat: true });
    expect(gw.external_fixed_ips[0].ip_address).toMatch(/^203\.0\.113\./);

    await json("alice", "network", "create", "n1");
    const subnet = await json(
      "alice",
      "subnet",
      "create",
      "--network",
      "n1",
      "--subnet-range",
      "10.50.0.0/24",
      "s1",
    );
    const add = await os("alice", "router", "add", "subnet", "r1", "s1");
    expect(add.code, add.stderr).toBe(0);
    const ports = await json("alice", "port", "list", "--router", "r1", "--long");
    const iface = ports.find((p: any) => p["Device Owner"] === "network:router_interface");
    expect(JSON.stringify(iface["Fixed IP Addresses"])).toContain(subnet.gateway_ip);

    expect((await os("alice", "router", "remove", "subnet", "r1", "s1")).code).toBe(0);
    expect((await os("alice", "router", "unset", "--external-gateway", "r1")).code).toBe(0);
    expect((await os("alice", "router", "delete", "r1")).code).toBe(0);
    expect(await json("alice", "router", "list")).toEqual([]);
  }, 240_000);

  it("a fresh project's auto-allocated topology: check, create, delete, create; --nic auto uses it", async () => {
    const p3 = await projectId("p3");
    // Neutron answers the check with the id "dry-run=pass"; the CLI (6.0) shows its dry_run
    // column empty. A check that fails exits non-zero with Neutron's "Deployment error".
    const check = await os(
      "carol",
      "network",
      "auto",
      "allocated",
      "topology",
      "create",
      "--check-resources",
      "-f",
      "json",
    );
    expect(check.code, check.stderr).toBe(0);
    expect(JSON.parse(check.stdout)).toEqual({ dry_run: null });

    const first = await json("carol", "network", "auto", "allocated", "topology", "create");
    expect(first).toMatchObject({ project_id: p3 });
    expect((await json("carol", "network", "show", first.id)).id).toBe(first.id);
    // Asked again: the same topology.
    expect((await json("carol", "network", "auto", "allocated", "topology", "create")).id).toBe(first.id);

    const del = await os("carol", "network", "auto", "allocated", "topology", "delete");
    expect(del.code, del.stderr).toBe(0);
    expect((await os("carol", "network", "show", first.id)).code).not.toBe(0);
    expect(await json("carol", "router", "list")).toEqual([]);

    const topology = await json("carol", "network", "auto", "allocated", "topology", "create");
    expect(topology.id).not.toBe(first.id);

    const created = await json(
      "carol",
      "server",
      "create",
      "--flavor",
      "m1.tiny",
      "--image",
      IMAGE,
      "--nic",
      "auto",
      "auto-p3",
    );
    expect((await waitServer(mesh.apiUrl, created.id, "carol:p3")).status).toBe("ACTIVE");
    const ports = await json("carol", "port", "list", "--server", "auto-p3");
    expect(ports).toHaveLength(1);
    const port = await json("carol", "port", "show", ports[0].ID);
    expect(port.network_id).toBe(topology.id);
  }, 300_000);

  // `quota list --network --detail` is how python-openstackclient 6.0 shows a project's network
  // quotas (GET /v2.0/quotas/{project}/details); its `quota show` also reads the compute quotas
  // (os-quota-sets), which the compute API does not serve.
  it("quota list --network --detail: the caller's project's limits and usage", async () => {
    const p3 = await projectId("p3");
    // A member names its project by id (listing projects by name is the identity's admin's, as in Keystone).
    const rows = await json("carol", "quota", "list", "--network", "--detail", "--project", p3);
    const byResource = Object.fromEntries(rows.map((r: any) => [r.Resource, r]));
    expect(byResource.networks).toMatchObject({ "In Use": 1, Reserved: 0 });
    expect(byResource.routers).toMatchObject({ "In Use": 1 });
    expect(byResource.networks.Limit).toBeGreaterThan(0);
    const asAdmin = await json("admin", "quota", "list", "--network", "--detail", "--project", "p3");
    expect(asAdmin.find((r: any) => r.Resource === "networks")).toMatchObject({ "In Use": 1 });
  }, 120_000);
});
