// Acceptance with a real client: the unmodified `openstack` command drives ports and routers
// through the Networking API together with the compute API (a clouds.yaml gives the compute endpoint to admin_token auth and the Networking API as the
// network service's endpoint_override), with every service running as a process: a deferred port
// made with `port create` is bound by `server create --nic port-id` on the chosen host's segment,
// exactly as a port the conductor made. (Commands that name the caller's project — quota show,
// network auto allocated topology — are not here: admin_token auth has no project, so the CLI
// sends "None"; the REST tests cover those routes.)
import { execFile } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import type { Mesh } from "@stratus/runtime/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  createAutoPrerequisites,
  createRoutedNetwork,
  type NetworkClient,
  startApiMesh,
  waitServer,
} from "../api/helpers.js";

const IMAGE = "cirros-0.6.2-x86_64-disk";
const haveCli = existsSync("/usr/bin/openstack");
if (!haveCli && process.env.CI === "true") {
  throw new Error("CI=true but python3-openstackclient is not installed (/usr/bin/openstack)");
}
if (!haveCli)
  console.warn("python3-openstackclient is not installed: the ports/routers CLI acceptance is skipped");

const run = promisify(execFile);
let mesh: Mesh;
let net: NetworkClient;
let configDir = "";

/** One cloud per caller: compute at the compute API, network at the Networking API. */
function writeClouds(): void {
  const cloud = (token: string) => `
  ${token.split(":")[0]}:
    auth_type: admin_token
    auth:
      endpoint: ${mesh.apiUrl}/v2.1
      token: "${token}"
    network_endpoint_override: ${mesh.networkApiUrl}
    compute_api_version: "2.37"`;
  writeFileSync(
    join(configDir, "clouds.yaml"),
    `clouds:${["admin:admin", "alice:p1", "bob:p2", "carol:p3"].map(cloud).join("")}\n`,
  );
}

async function os(
  cloud: string,
  ...args: string[]
): Promise<{ stdout: string; stderr: string; code: number }> {
  try {
    const { stdout, stderr } = await run("/usr/bin/openstack", ["--os-cloud", cloud, ...args], {
      cwd: configDir,
      env: { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: configDir },
      timeout: 60_000,
    });
    return { stdout, stderr, code: 0 };
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string; code?: number };
    return { stdout: e.stdout ?? "", stderr: e.stderr ?? "", code: typeof e.code === "number" ? e.code : 1 };
  }
}

async function json(cloud: string, ...args: string[]): Promise<any> {
  const r = await os(cloud, ...args, "-f", "json");
  if (r.code !== 0) throw new Error(`openstack ${args.join(" ")}: exit ${r.code}: ${r.stderr}${r.stdout}`);
  return JSON.parse(r.stdout);
}

describe.skipIf(!haveCli)("the openstack CLI: ports and routers on the Networking API", () => {
  beforeAll(async () => {
    ({ mesh, net } = await startApiMesh());
    configDir = mkdtempSync(join(tmpdir(), "stratus-osc-"));
    writeClouds();
    await createAutoPrerequisites(net);
    await createRoutedNetwork(net, "p2", "p2-routed");
    // Five services and four hosts starting on two shared cores.
  }, 400_000);
  afterAll(async () => {
    await mesh?.close();
    if (configDir) rmSync(configDir, { recursive: true, force: true });
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
    expect(router).toMatchObject({ name: "r1", project_id: "p1" });
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

  it("a project's auto-allocated topology made through the Networking API is what --nic auto uses", async () => {
    const call = (method: string, path: string) =>
      fetch(`${mesh.networkApiUrl}${path}`, { method, headers: { "x-auth-token": "carol:p3" } });
    const dry = await call("GET", "/v2.0/auto-allocated-topology/p3?fields=dry-run");
    expect(dry.status).toBe(200);
    const made = await call("GET", "/v2.0/auto-allocated-topology/p3");
    expect(made.status).toBe(200);
    const networkId = ((await made.json()) as any).auto_allocated_topology.id as string;

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
    const ports = await json("carol", "port", "list", "--server", "auto-p3", "--long");
    expect(ports).toHaveLength(1);
    const port = await json("carol", "port", "show", ports[0].ID);
    expect(port.network_id).toBe(networkId);
    // Still one topology: the same network answers again.
    const again = await call("GET", "/v2.0/auto-allocated-topology/p3");
    expect(((await again.json()) as any).auto_allocated_topology.id).toBe(networkId);
  }, 240_000);
});
