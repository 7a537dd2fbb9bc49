// Ports through the Networking API: ip_allocation chosen as Neutron chooses it on a routed network
// (deferred without fixed_ips, immediate with them, none with fixed_ips: []), binding:host_id
// (admin) giving a deferred port its address from that host's segment, the admin-only binding
// attributes, device_id filters, deletion rules and Neutron's error bodies.
import { NetworkService } from "@stratus/contracts/network/v1";
import { serviceClient } from "@stratus/runtime";
import type { Mesh } from "@stratus/runtime/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { asAdmin, createRoutedNetworkOf, type NetworkClient } from "../api/helpers.js";
import { callAs, neutronError, startNetworkingMesh } from "./helpers.js";

let mesh: Mesh;
let net: NetworkClient;
let admin: ReturnType<typeof callAs>;
let alice: ReturnType<typeof callAs>;
let bob: ReturnType<typeof callAs>;
let routedId = "";
const subnetOf: Record<string, string> = {};

beforeAll(async () => {
  mesh = await startNetworkingMesh();
  net = serviceClient(NetworkService, mesh.url("network-adapter"));
  admin = callAs(mesh, "admin:admin");
  alice = callAs(mesh, "alice:p1");
  bob = callAs(mesh, "bob:p2");
  const routed = await createRoutedNetworkOf(net, "p1", "routed");
  routedId = routed.id;
  for (const s of (await asAdmin(() => net.listSubnets({ networkId: routedId }))).subnets) {
    subnetOf[s.cidr] = s.id;
  }
  // As the compute agents report them: rack1-1 reaches physnet-rack1, rack2-1 physnet-rack2.
  await net.reportHostPhysicalNetworks({ host: "rack1-1", physicalNetworks: ["physnet-rack1"] });
  await net.reportHostPhysicalNetworks({ host: "rack2-1", physicalNetworks: ["physnet-rack2"] });
});
afterAll(async () => {
  await mesh?.close();
});

describe("ports", () => {
  it("a port on a routed network without fixed_ips is deferred: no address until bound", async () => {
    const r = await alice("POST", "/v2.0/ports", { port: { network_id: routedId, name: "p1" } });
    expect(r.status).toBe(201);
    expect(r.body.port).toMatchObject({
      name: "p1",
      network_id: routedId,
      project_id: "p1",
      tenant_id: "p1",
      ip_allocation: "deferred",
      fixed_ips: [],
      admin_state_up: true,
      device_id: "",
      "binding:vnic_type": "normal",
    });
    expect(r.body.port.mac_address).toMatch(/^fa:16:3e(:[0-9a-f]{2}){3}$/);
    // binding:host_id, vif_type, vif_details and profile are an admin's to see (Neutron's policy).
    expect(r.body.port).not.toHaveProperty("binding:host_id");
    expect(r.body.port).not.toHaveProperty("binding:vif_type");
    const shown = await admin("GET", `/v2.0/ports/${r.body.port.id}`);
    expect(shown.body.port).toMatchObject({ "binding:host_id": "", "binding:vif_type": "unbound" });
  });

  it("binding:host_id (admin) binds a deferred port on that host's segment, and moves it", async () => {
    const made = (await alice("POST", "/v2.0/ports", { port: { network_id: routedId } })).body.port;
    const bound = await admin("PUT", `/v2.0/ports/${made.id}`, { port: { "binding:host_id": "rack2-1" } });
    expect(bound.status).toBe(200);
    expect(bound.body.port["binding:host_id"]).toBe("rack2-1");
    expect(bound.body.port["binding:vif_type"]).not.toBe("unbound");
    expect(bound.body.port.fixed_ips).toHaveLength(1);
    expect(bound.body.port.fixed_ips[0].subnet_id).toBe(subnetOf["10.1.2.0/24"]);
    expect(bound.body.port.fixed_ips[0].ip_address).toMatch(/^10\.1\.2\./);
    // The owner sees the address, not the binding.
    const seen = (await alice("GET", `/v2.0/ports/${made.id}`)).body.port;
    expect(seen.fixed_ips).toEqual(bound.body.port.fixed_ips);
    expect(seen).not.toHaveProperty("binding:host_id");

    const direct = await admin("POST", "/v2.0/ports", {
      port: { network_id: routedId, project_id: "p1", "binding:host_id": "rack1-1" },
    });
    expect(direct.status).toBe(201);
    expect(direct.body.port.fixed_ips[0].ip_address).toMatch(/^10\.1\.1\./);
    expect(direct.body.port.project_id).toBe("p1");
  });

  it("a non-admin may not set binding:host_id, nor make a port for another project (403)", async () => {
    const m = neutronError(
      await alice("POST", "/v2.0/ports", { port: { network_id: routedId, "binding:host_id": "rack1-1" } }),
      403,
      "PolicyNotAuthorized",
    );
    expect(m).toMatch(/binding:host_id/);
    neutronError(
      await alice("POST", "/v2.0/ports", { port: { network_id: routedId, project_id: "p2" } }),
      403,
      "PolicyNotAuthorized",
    );
    neutronError(
      await alice("POST", "/v2.0/ports", {
        port: { network_id: routedId, project_id: "p1", tenant_id: "p2" },
      }),
      400,
      "HTTPBadRequest",
    );
  });

  it("fixed_ips by subnet or address are immediate; fixed_ips: [] is none", async () => {
    const bySubnet = await alice("POST", "/v2.0/ports", {
      port: { network_id: routedId, fixed_ips: [{ subnet_id: subnetOf["10.1.1.0/24"] }] },
    });
    expect(bySubnet.status).toBe(201);
    expect(bySubnet.body.port.ip_allocation).toBe("immediate");
    expect(bySubnet.body.port.fixed_ips[0].ip_address).toMatch(/^10\.1\.1\./);

    const byAddress = await alice("POST", "/v2.0/ports", {
      port: { network_id: routedId, fixed_ips: [{ ip_address: "10.1.2.77" }] },
    });
    expect(byAddress.status).toBe(201);
    expect(byAddress.body.port.fixed_ips).toEqual([
      { subnet_id: subnetOf["10.1.2.0/24"], ip_address: "10.1.2.77" },
    ]);
    // The same address again: Neutron's IpAddressAlreadyAllocated.
    const again = await alice("POST", "/v2.0/ports", {
      port: { network_id: routedId, fixed_ips: [{ ip_address: "10.1.2.77" }] },
    });
    expect(again.status).toBe(409);
    expect(again.body.NeutronError.message).toMatch(/10\.1\.2\.77/);

    const none = await alice("POST", "/v2.0/ports", { port: { network_id: routedId, fixed_ips: [] } });
    expect(none.status).toBe(201);
    expect(none.body.port).toMatchObject({ ip_allocation: "none", fixed_ips: [] });
  });

  it("updates name, admin_state_up and device fields; lists by device_id and network_id with fields", async () => {
    const p = (await alice("POST", "/v2.0/ports", { port: { network_id: routedId, name: "before" } })).body
      .port;
    const u = await alice("PUT", `/v2.0/ports/${p.id}`, {
      port: { name: "after", admin_state_up: false, device_id: "dev-1", device_owner: "custom:thing" },
    });
    expect(u.status).toBe(200);
    expect(u.body.port).toMatchObject({ name: "after", admin_state_up: false, device_id: "dev-1" });
    expect(u.body.port.revision_number).toBeGreaterThan(p.revision_number);
    const byDevice = await alice("GET", "/v2.0/ports?device_id=dev-1&fields=id&fields=device_id");
    expect(byDevice.status).toBe(200);
    expect(byDevice.body.ports).toEqual([{ id: p.id, device_id: "dev-1" }]);
    const onNetwork = await alice("GET", `/v2.0/ports?network_id=${routedId}`);
    expect(onNetwork.body.ports.map((x: any) => x.id)).toContain(p.id);
    // Another project sees none of p1's ports, and a p1 port is not found for it.
    expect((await bob("GET", `/v2.0/ports?network_id=${routedId}`)).body.ports).toEqual([]);
    neutronError(await bob("GET", `/v2.0/ports/${p.id}`), 404, "PortNotFound");
  });

  it("deletes a port (204, then 404); a port a server uses is refused (409)", async () => {
    const p = (await alice("POST", "/v2.0/ports", { port: { network_id: routedId } })).body.port;
    expect((await alice("DELETE", `/v2.0/ports/${p.id}`)).status).toBe(204);
    neutronError(await alice("GET", `/v2.0/ports/${p.id}`), 404, "PortNotFound");
    neutronError(await alice("DELETE", `/v2.0/ports/${p.id}`), 404, "PortNotFound");

    const used = (
      await alice("POST", "/v2.0/ports", {
        port: {
          network_id: routedId,
          device_id: "6f1c7c3e-4a55-4b61-9c62-2a0f2d1e0b11",
          device_owner: "compute:nova",
        },
      })
    ).body.port;
    const refused = neutronError(await alice("DELETE", `/v2.0/ports/${used.id}`), 409, "HTTPConflict");
    expect(refused).toMatch(/attached to server 6f1c7c3e/);
    expect((await alice("GET", `/v2.0/ports/${used.id}`)).status).toBe(200);
  });

  it("refuses bad bodies with Neutron's messages", async () => {
    const bad = async (body: unknown, message: string | RegExp, method = "POST", path = "/v2.0/ports") => {
      const m = neutronError(await alice(method, path, body), 400, "HTTPBadRequest");
      if (typeof message === "string") expect(m).toBe(message);
      else expect(m).toMatch(message);
    };
    await bad(
      { port: { name: "x" } },
      "Failed to parse request. Required attribute 'network_id' not specified",
    );
    await bad({ port: { network_id: routedId, color: "red" } }, "Unrecognized attribute(s) 'color'");
    await bad(
      { port: { network_id: routedId, ip_allocation: "none" } },
      "Attribute 'ip_allocation' not allowed in POST",
    );
    await bad({ port: { network_id: routedId, status: "ACTIVE" } }, "Attribute 'status' not allowed in POST");
    await bad(
      { port: { network_id: "nope" } },
      "Invalid input for network_id. Reason: 'nope' is not a valid UUID.",
    );
    await bad(
      { port: { network_id: routedId, mac_address: "01:00:00:00:00:01" } },
      "Invalid input for mac_address. Reason: '01:00:00:00:00:01' is not a valid MAC address.",
    );
    await bad({ port: { network_id: routedId, fixed_ips: "10.1.1.5" } }, /^Invalid input for fixed_ips/);
    await bad(
      { port: { network_id: routedId, fixed_ips: [{ ip_address: "300.1.1.1" }] } },
      /not a valid IP address/,
    );
    await bad(
      { port: { network_id: routedId, fixed_ips: [{ ip_address: "10.1.1.9" }, { ip_address: "10.1.1.9" }] } },
      /Duplicate IP address '10\.1\.1\.9'/,
    );
    await bad({ port: { network_id: routedId, fixed_ips: [{}] } }, /Invalid data format for fixed IP/);
    await bad({ port: { network_id: routedId, "binding:vnic_type": "warp" } }, /'warp' is not in \['normal'/);
    await bad({ port: { network_id: routedId, admin_state_up: "maybe" } }, /cannot be converted to boolean/);
    const p = (await alice("POST", "/v2.0/ports", { port: { network_id: routedId } })).body.port;
    await bad(
      { port: { network_id: routedId } },
      "Cannot update read-only attribute network_id",
      "PUT",
      `/v2.0/ports/${p.id}`,
    );
    neutronError(await alice("GET", "/v2.0/ports/not-a-uuid"), 404, "PortNotFound");
    neutronError(
      await alice("POST", "/v2.0/ports", { port: { network_id: "00000000-0000-4000-8000-000000000000" } }),
      404,
      "NetworkNotFound",
    );
  });
});
