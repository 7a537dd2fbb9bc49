// Routers (external gateway, interfaces by subnet and by port), the auto-allocated topology (dry
// run with the compute API's reasons, made once under concurrent calls, deleted) and quotas
// (limits, enforcement under concurrency, details) through the Networking API.
import { NetworkService } from "@stratus/contracts/network/v1";
import { serviceClient } from "@stratus/runtime";
import type { Mesh } from "@stratus/runtime/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createAutoPrerequisites, type NetworkClient } from "../api/helpers.js";
import { callAs, neutronError, startNetworkingMesh } from "./helpers.js";

let mesh: Mesh;
let net: NetworkClient;
let admin: ReturnType<typeof callAs>;
let alice: ReturnType<typeof callAs>;
let bob: ReturnType<typeof callAs>;

beforeAll(async () => {
  mesh = await startNetworkingMesh();
  net = serviceClient(NetworkService, mesh.url("network-adapter"));
  admin = callAs(mesh, "admin:admin");
  alice = callAs(mesh, "alice:p1");
  bob = callAs(mesh, "bob:p2");
});
afterAll(async () => {
  await mesh?.close();
});

/** A network of the caller's project with one IPv4 subnet, through the API. */
async function tenantNetwork(call: ReturnType<typeof callAs>, cidr: string) {
  const n = await call("POST", "/v2.0/networks", { network: { name: `net-${cidr}` } });
  expect(n.status).toBe(201);
  const s = await call("POST", "/v2.0/subnets", {
    subnet: { network_id: n.body.network.id, cidr, ip_version: 4 },
  });
  expect(s.status).toBe(201);
  return { networkId: n.body.network.id as string, subnet: s.body.subnet };
}

describe("auto-allocated topology", () => {
  it("a dry run without a default external network or pool is a 409 with every reason", async () => {
    const m = neutronError(
      await alice("GET", "/v2.0/auto-allocated-topology/p1?fields=dry-run"),
      409,
      "AutoAllocationFailure",
    );
    expect(m).toBe("Deployment error: No default router:external network; No default subnetpools defined.");
    // The compute API gives the same reasons for --nic auto.
    neutronError(await alice("GET", "/v2.0/auto-allocated-topology/p1"), 409, "AutoAllocationFailure");
    neutronError(await alice("GET", "/v2.0/auto-allocated-topology/p1?fields=id"), 400, "HTTPBadRequest");
  });

  it("is made once, whoever asks at the same time; a dry run then passes; DELETE takes it away", async () => {
    await createAutoPrerequisites(net);
    const dry = await alice("GET", "/v2.0/auto-allocated-topology/p1?fields=dry-run");
    expect(dry.status).toBe(200);
    expect(dry.body.auto_allocated_topology).toEqual({
      id: "dry-run=pass",
      tenant_id: "p1",
      project_id: "p1",
    });
    // The dry run made nothing.
    expect((await alice("GET", "/v2.0/networks?name=auto_allocated_network")).body.networks).toEqual([]);

    const answers = await Promise.all(
      Array.from({ length: 8 }, () => alice("GET", "/v2.0/auto-allocated-topology/p1")),
    );
    for (const a of answers) expect(a.status).toBe(200);
    const ids = new Set(answers.map((a) => a.body.auto_allocated_topology.id));
    expect(ids.size).toBe(1);
    const [networkId] = [...ids];
    expect(answers[0]!.body.auto_allocated_topology).toEqual({
      id: networkId,
      tenant_id: "p1",
      project_id: "p1",
    });
    const nets = (await alice("GET", "/v2.0/networks?name=auto_allocated_network")).body.networks;
    expect(nets.map((n: any) => n.id)).toEqual([networkId]);
    const routers = (await alice("GET", "/v2.0/routers")).body.routers;
    expect(routers).toHaveLength(1);
    expect(routers[0].external_gateway_info.network_id).toBeTruthy();

    // Another project's topology is not p1's to make or delete; an admin may.
    neutronError(await alice("GET", "/v2.0/auto-allocated-topology/p2"), 403, "PolicyNotAuthorized");
    neutronError(await alice("DELETE", "/v2.0/auto-allocated-topology/p2"), 403, "PolicyNotAuthorized");

    expect((await alice("DELETE", "/v2.0/auto-allocated-topology/p1")).status).toBe(204);
    expect((await alice("GET", "/v2.0/networks?name=auto_allocated_network")).body.networks).toEqual([]);
    expect((await alice("GET", "/v2.0/routers")).body.routers).toEqual([]);
    neutronError(await alice("DELETE", "/v2.0/auto-allocated-topology/p1"), 404, "HTTPNotFound");
    const again = await alice("GET", "/v2.0/auto-allocated-topology/p1");
    expect(again.status).toBe(200);
    expect(again.body.auto_allocated_topology.id).not.toBe(networkId);
    expect((await alice("DELETE", "/v2.0/auto-allocated-topology/p1")).status).toBe(204);
  });
});

describe("routers", () => {
  let publicId = "";
  beforeAll(async () => {
    publicId = (await admin("GET", "/v2.0/networks?name=public")).body.networks[0].id;
  });

  it("creates a router with an external gateway holding an address of the external network", async () => {
    const r = await alice("POST", "/v2.0/routers", {
      router: { name: "r1", external_gateway_info: { network_id: publicId } },
    });
    expect(r.status).toBe(201);
    expect(r.body.router).toMatchObject({
      name: "r1",
      project_id: "p1",
      admin_state_up: true,
      status: "ACTIVE",
    });
    const gw = r.body.router.external_gateway_info;
    expect(gw).toMatchObject({ network_id: publicId, enable_snat: true });
    expect(gw.external_fixed_ips).toHaveLength(1);
    expect(gw.external_fixed_ips[0].ip_address).toMatch(/^203\.0\.113\./);
    // external_fixed_ips and enable_snat are an admin's to choose.
    neutronError(
      await alice("POST", "/v2.0/routers", {
        router: { external_gateway_info: { network_id: publicId, enable_snat: false } },
      }),
      403,
      "PolicyNotAuthorized",
    );
    const chosen = await admin("POST", "/v2.0/routers", {
      router: {
        project_id: "p1",
        external_gateway_info: {
          network_id: publicId,
          enable_snat: false,
          external_fixed_ips: [{ ip_address: "203.0.113.200" }],
        },
      },
    });
    expect(chosen.status).toBe(201);
    expect(chosen.body.router.external_gateway_info).toMatchObject({
      enable_snat: false,
      external_fixed_ips: [{ ip_address: "203.0.113.200" }],
    });
    expect((await admin("DELETE", `/v2.0/routers/${chosen.body.router.id}`)).status).toBe(204);
  });

  it("sets and clears the gateway by update", async () => {
    const r = (await alice("POST", "/v2.0/routers", { router: { name: "r2" } })).body.router;
    expect(r.external_gateway_info).toBeNull();
    const set = await alice("PUT", `/v2.0/routers/${r.id}`, {
      router: { external_gateway_info: { network_id: publicId } },
    });
    expect(set.status).toBe(200);
    expect(set.body.router.external_gateway_info.network_id).toBe(publicId);
    const cleared = await alice("PUT", `/v2.0/routers/${r.id}`, { router: { external_gateway_info: {} } });
    expect(cleared.body.router.external_gateway_info).toBeNull();
    const renamed = await alice("PUT", `/v2.0/routers/${r.id}`, {
      router: { name: "r2b", external_gateway_info: null },
    });
    expect(renamed.body.router).toMatchObject({ name: "r2b", external_gateway_info: null });
    // A network that is not external cannot be a gateway.
    const { networkId } = await tenantNetwork(alice, "10.9.0.0/24");
    neutronError(
      await alice("PUT", `/v2.0/routers/${r.id}`, {
        router: { external_gateway_info: { network_id: networkId } },
      }),
      400,
      "BadRequest",
    );
    expect((await alice("DELETE", `/v2.0/routers/${r.id}`)).status).toBe(204);
    neutronError(await alice("GET", `/v2.0/routers/${r.id}`), 404, "RouterNotFound");
  });

  it("adds and removes interfaces by subnet and by port; a router with interfaces is not deleted", async () => {
    const r = (await alice("POST", "/v2.0/routers", { router: { name: "r3" } })).body.router;
    const a = await tenantNetwork(alice, "10.20.0.0/24");
    const added = await alice("PUT", `/v2.0/routers/${r.id}/add_router_interface`, {
      subnet_id: a.subnet.id,
    });
    expect(added.status).toBe(200);
    expect(added.body).toMatchObject({
      id: r.id,
      subnet_id: a.subnet.id,
      subnet_ids: [a.subnet.id],
      network_id: a.networkId,
      project_id: "p1",
      tenant_id: "p1",
    });
    // The interface is a port holding the subnet's gateway address.
    const port = (await alice("GET", `/v2.0/ports/${added.body.port_id}`)).body.port;
    expect(port).toMatchObject({ device_id: r.id, device_owner: "network:router_interface" });
    expect(port.fixed_ips).toEqual([{ subnet_id: a.subnet.id, ip_address: a.subnet.gateway_ip }]);
    neutronError(await alice("DELETE", `/v2.0/ports/${port.id}`), 409, "ServicePortInUse");
    neutronError(await alice("DELETE", `/v2.0/routers/${r.id}`), 409, "RouterInUse");

    const b = await tenantNetwork(alice, "10.21.0.0/24");
    const own = (
      await alice("POST", "/v2.0/ports", {
        port: { network_id: b.networkId, fixed_ips: [{ ip_address: "10.21.0.10" }] },
      })
    ).body.port;
    const byPort = await alice("PUT", `/v2.0/routers/${r.id}/add_router_interface`, { port_id: own.id });
    expect(byPort.status).toBe(200);
    expect(byPort.body).toMatchObject({ port_id: own.id, subnet_id: b.subnet.id, network_id: b.networkId });

    const removed = await alice("PUT", `/v2.0/routers/${r.id}/remove_router_interface`, {
      subnet_id: a.subnet.id,
    });
    expect(removed.status).toBe(200);
    expect(removed.body).toMatchObject({ id: r.id, port_id: port.id, subnet_id: a.subnet.id });
    neutronError(await alice("GET", `/v2.0/ports/${port.id}`), 404, "PortNotFound");
    expect(
      (await alice("PUT", `/v2.0/routers/${r.id}/remove_router_interface`, { port_id: own.id })).status,
    ).toBe(200);
    neutronError(
      await alice("PUT", `/v2.0/routers/${r.id}/remove_router_interface`, { subnet_id: a.subnet.id }),
      404,
      "RouterInterfaceNotFound",
    );
    expect((await alice("DELETE", `/v2.0/routers/${r.id}`)).status).toBe(204);
  });

  it("refuses bad interface and router bodies, and other projects' routers", async () => {
    const r = (await alice("POST", "/v2.0/routers", { router: { name: "r4" } })).body.router;
    const path = `/v2.0/routers/${r.id}/add_router_interface`;
    expect(neutronError(await alice("PUT", path, {}), 400, "BadRequest")).toMatch(
      /Either subnet_id or port_id/,
    );
    const both = {
      subnet_id: "00000000-0000-4000-8000-000000000001",
      port_id: "00000000-0000-4000-8000-000000000002",
    };
    expect(neutronError(await alice("PUT", path, both), 400, "BadRequest")).toMatch(/Cannot specify both/);
    neutronError(await alice("PUT", path, { subnet_id: "x" }), 400, "HTTPBadRequest");
    neutronError(await alice("PUT", path, "[]"), 400, "HTTPBadRequest");
    neutronError(
      await alice("POST", "/v2.0/routers", { router: { distributed: true } }),
      400,
      "HTTPBadRequest",
    );
    neutronError(
      await alice("POST", "/v2.0/routers", { router: { external_gateway_info: { enable_snat: true } } }),
      400,
      "HTTPBadRequest",
    );
    neutronError(await bob("GET", `/v2.0/routers/${r.id}`), 404, "RouterNotFound");
    neutronError(await bob("PUT", path, { subnet_id: both.subnet_id }), 404, "RouterNotFound");
    expect((await bob("GET", "/v2.0/routers")).body.routers).toEqual([]);
  });
});

describe("quotas", () => {
  it("shows a project's limits, defaults and details; only an admin changes them", async () => {
    const own = await bob("GET", "/v2.0/quotas/p2");
    expect(own.status).toBe(200);
    expect(Object.keys(own.body.quota).sort()).toEqual(["network", "port", "router", "subnet", "subnetpool"]);
    const defaults = await bob("GET", "/v2.0/quotas/p2/default");
    expect(defaults.body.quota).toEqual(own.body.quota);
    neutronError(await bob("GET", "/v2.0/quotas/p1"), 403, "PolicyNotAuthorized");
    neutronError(await bob("PUT", "/v2.0/quotas/p2", { quota: { port: 100 } }), 403, "PolicyNotAuthorized");
    neutronError(await bob("GET", "/v2.0/quotas"), 403, "PolicyNotAuthorized");
    expect((await bob("GET", "/v2.0/quotas/tenant")).body).toEqual({ tenant: { tenant_id: "p2" } });

    const { networkId } = await tenantNetwork(bob, "10.30.0.0/24");
    const details = await bob("GET", "/v2.0/quotas/p2/details");
    expect(details.body.quota.network).toEqual({ used: 1, limit: own.body.quota.network, reserved: 0 });
    expect(details.body.quota.subnet.used).toBe(1);

    neutronError(await admin("PUT", "/v2.0/quotas/p2", { quota: { port: -2 } }), 400, "HTTPBadRequest");
    neutronError(await admin("PUT", "/v2.0/quotas/p2", { quota: { floatingip: 1 } }), 400, "HTTPBadRequest");
    neutronError(await admin("PUT", "/v2.0/quotas/p2", { quota: { port: "many" } }), 400, "HTTPBadRequest");
    neutronError(await admin("PUT", "/v2.0/quotas/p2", { quotas: {} }), 400, "HTTPBadRequest");
    // Below what is used: refused unless forced.
    neutronError(await admin("PUT", "/v2.0/quotas/p2", { quota: { network: 0 } }), 400, "HTTPBadRequest");

    const set = await admin("PUT", "/v2.0/quotas/p2", { quota: { port: 5 } });
    expect(set.status).toBe(200);
    expect(set.body.quota.port).toBe(5);
    expect((await admin("GET", "/v2.0/quotas")).body.quotas).toEqual([
      { ...set.body.quota, project_id: "p2", tenant_id: "p2" },
    ]);

    // 12 creations at once for 5 places: exactly 5 are made, the others are OverQuota (the
    // owner's per-turn statement meets the limit; those that fit are not refused with the rest).
    const tries = await Promise.all(
      Array.from({ length: 12 }, () => bob("POST", "/v2.0/ports", { port: { network_id: networkId } })),
    );
    expect(tries.filter((t) => t.status === 201)).toHaveLength(5);
    for (const t of tries.filter((x) => x.status !== 201)) {
      expect(neutronError(t, 409, "OverQuota")).toMatch(/port/);
    }
    expect((await bob("GET", "/v2.0/quotas/p2/details")).body.quota.port).toEqual({
      used: 5,
      limit: 5,
      reserved: 0,
    });

    expect((await admin("DELETE", "/v2.0/quotas/p2")).status).toBe(204);
    expect((await bob("GET", "/v2.0/quotas/p2")).body.quota).toEqual(own.body.quota);
    expect((await admin("GET", "/v2.0/quotas")).body.quotas).toEqual([]);
  });
});
