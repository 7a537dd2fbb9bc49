// Networks, segments, subnets and subnet pools through the Networking API v2.0: Neutron's views,
// the routed-network rules (the network-adapter's) and their errors in Neutron's format, what
// non-admins see and may set, and fields / filters / sorting / pagination with links.
import { NetworkService } from "@stratus/contracts/network/v1";
import { serviceClient } from "@stratus/runtime";
import type { Mesh } from "@stratus/runtime/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { asAdmin } from "../api/helpers.js";
import { callAs, neutronError, startNetworkingMesh } from "./helpers.js";

let mesh: Mesh;
let admin: ReturnType<typeof callAs>;
let alice: ReturnType<typeof callAs>;
let bob: ReturnType<typeof callAs>;

const NIL = "00000000-0000-4000-8000-000000000000";

beforeAll(async () => {
  mesh = await startNetworkingMesh();
  admin = callAs(mesh, "admin:admin");
  alice = callAs(mesh, "alice:p1");
  bob = callAs(mesh, "bob:p2");
});
afterAll(async () => {
  await mesh?.close();
});

/** POST that must succeed; the created resource. */
async function made(call: ReturnType<typeof callAs>, collection: string, singular: string, body: object) {
  const r = await call("POST", `/v2.0/${collection}`, { [singular]: body });
  if (r.status !== 201) throw new Error(`${collection}: ${r.status} ${JSON.stringify(r.body)}`);
  return r.body[singular];
}

describe("networks", () => {
  it("a provider network: 201 with Neutron's view; admins see the provider attributes, others not", async () => {
    const n = await made(admin, "networks", "network", {
      name: "prov1",
      shared: true,
      "provider:network_type": "vlan",
      "provider:physical_network": "provider1",
      "provider:segmentation_id": 101,
      project_id: "p1",
    });
    expect(n).toMatchObject({
      name: "prov1",
      shared: true,
      "router:external": false,
      is_default: false,
      admin_state_up: true,
      status: "ACTIVE",
      project_id: "p1",
      tenant_id: "p1",
      subnets: [],
      "provider:network_type": "vlan",
      "provider:physical_network": "provider1",
      "provider:segmentation_id": 101,
      revision_number: expect.any(Number),
    });
    expect(n.mtu).toBeGreaterThan(0);
    expect(n.created_at).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    const seen = await bob("GET", `/v2.0/networks/${n.id}`);
    expect(seen.status).toBe(200);
    expect(seen.body.network.shared).toBe(true);
    expect(Object.keys(seen.body.network).filter((k) => k.startsWith("provider:"))).toEqual([]);
    // The segment id is taken on its physical network.
    const again = await admin("POST", "/v2.0/networks", {
      network: {
        name: "dup",
        "provider:network_type": "vlan",
        "provider:physical_network": "provider1",
        "provider:segmentation_id": 101,
      },
    });
    expect(neutronError(again, 409, "VlanIdInUse")).toMatch(
      /VLAN 101 on physical network provider1 is in use/,
    );
  });

  it("multi-provider: several segments show as `segments` (admins)", async () => {
    const n = await made(admin, "networks", "network", {
      name: "multi",
      segments: [
        {
          "provider:network_type": "vlan",
          "provider:physical_network": "rackA",
          "provider:segmentation_id": 11,
        },
        {
          "provider:network_type": "vlan",
          "provider:physical_network": "rackB",
          "provider:segmentation_id": 12,
        },
      ],
    });
    expect(n.segments).toEqual([
      {
        "provider:network_type": "vlan",
        "provider:physical_network": "rackA",
        "provider:segmentation_id": 11,
      },
      {
        "provider:network_type": "vlan",
        "provider:physical_network": "rackB",
        "provider:segmentation_id": 12,
      },
    ]);
    expect(n["provider:network_type"]).toBeUndefined();
    const both = await admin("POST", "/v2.0/networks", {
      network: {
        segments: [{ "provider:network_type": "flat", "provider:physical_network": "x" }],
        "provider:network_type": "flat",
      },
    });
    expect(neutronError(both, 400, "HTTPBadRequest")).toBe(
      "Segments and provider values cannot both be set.",
    );
  });

  it("non-admins make plain networks of their own, but no provider, shared or external ones", async () => {
    const own = await made(alice, "networks", "network", { name: "alice-net" });
    expect(own.project_id).toBe("p1");
    for (const body of [
      { name: "x", shared: true },
      { name: "x", "router:external": true },
      {
        name: "x",
        "provider:network_type": "vlan",
        "provider:physical_network": "p",
        "provider:segmentation_id": 5,
      },
    ]) {
      neutronError(await alice("POST", "/v2.0/networks", { network: body }), 403, "PolicyNotAuthorized");
    }
    neutronError(
      await alice("POST", "/v2.0/networks", { network: { name: "x", project_id: "p2" } }),
      403,
      "PolicyNotAuthorized",
    );
    expect(
      neutronError(
        await alice("POST", "/v2.0/networks", { network: { project_id: "p1", tenant_id: "p2" } }),
        400,
        "HTTPBadRequest",
      ),
    ).toBe("'project_id' and 'tenant_id' do not match");
    // Another project's network is not there for bob.
    neutronError(await bob("GET", `/v2.0/networks/${own.id}`), 404, "NetworkNotFound");
    neutronError(await bob("DELETE", `/v2.0/networks/${own.id}`), 404, "NetworkNotFound");
    const bobs = (await bob("GET", "/v2.0/networks")).body.networks.map((n: any) => n.id);
    expect(bobs).not.toContain(own.id);
  });

  it("updates name, mtu and admin_state_up; provider attributes are read-only; 404 for unknown ids", async () => {
    const n = await made(alice, "networks", "network", { name: "upd" });
    const r = await alice("PUT", `/v2.0/networks/${n.id}`, { network: { name: "upd2", mtu: 1400 } });
    expect(r.status).toBe(200);
    expect(r.body.network).toMatchObject({ name: "upd2", mtu: 1400 });
    expect(r.body.network.revision_number).toBeGreaterThan(n.revision_number);
    expect(
      neutronError(
        await admin("PUT", `/v2.0/networks/${n.id}`, { network: { "provider:segmentation_id": 3 } }),
        400,
        "HTTPBadRequest",
      ),
    ).toBe("Cannot update read-only attribute provider:segmentation_id");
    neutronError(
      await alice("PUT", `/v2.0/networks/${n.id}`, { network: { shared: true } }),
      403,
      "PolicyNotAuthorized",
    );
    neutronError(await alice("GET", `/v2.0/networks/${NIL}`), 404, "NetworkNotFound");
    neutronError(await alice("GET", "/v2.0/networks/not-a-uuid"), 404, "NetworkNotFound");
    neutronError(
      await alice("PUT", `/v2.0/networks/${NIL}`, { network: { name: "x" } }),
      404,
      "NetworkNotFound",
    );
    expect((await alice("DELETE", `/v2.0/networks/${n.id}`)).status).toBe(204);
    neutronError(await alice("DELETE", `/v2.0/networks/${n.id}`), 404, "NetworkNotFound");
  });
});

describe("segments", () => {
  it("CRUD with Neutron's rules: admin only, unique ids, no delete while a subnet uses it", async () => {
    const n = await made(admin, "networks", "network", {
      name: "routed",
      "provider:network_type": "vlan",
      "provider:physical_network": "seg-a",
      "provider:segmentation_id": 201,
    });
    const list = await admin("GET", `/v2.0/segments?network_id=${n.id}`);
    expect(list.status).toBe(200);
    expect(list.body.segments).toHaveLength(1);
    const first = list.body.segments[0];
    expect(first).toMatchObject({
      network_id: n.id,
      network_type: "vlan",
      physical_network: "seg-a",
      segmentation_id: 201,
      name: null,
    });
    const renamed = await admin("PUT", `/v2.0/segments/${first.id}`, { segment: { name: "segment1" } });
    expect(renamed.status).toBe(200);
    expect(renamed.body.segment.name).toBe("segment1");
    const second = await made(admin, "segments", "segment", {
      network_id: n.id,
      network_type: "vlan",
      physical_network: "seg-b",
      segmentation_id: 202,
      name: "segment2",
    });
    expect(second).toMatchObject({ name: "segment2", physical_network: "seg-b", segmentation_id: 202 });
    const shown = await admin("GET", `/v2.0/networks/${n.id}`);
    expect(shown.body.network.segments.map((s: any) => s["provider:physical_network"])).toEqual([
      "seg-a",
      "seg-b",
    ]);
    const taken = await admin("POST", "/v2.0/segments", {
      segment: { network_id: n.id, network_type: "vlan", physical_network: "seg-b", segmentation_id: 202 },
    });
    neutronError(taken, 409, "VlanIdInUse");
    neutronError(
      await admin("POST", "/v2.0/segments", { segment: { network_id: n.id, network_type: "bogus" } }),
      400,
      "InvalidInput",
    );
    expect(
      neutronError(
        await admin("POST", "/v2.0/segments", { segment: { network_type: "vlan" } }),
        400,
        "HTTPBadRequest",
      ),
    ).toBe("Failed to parse request. Required attribute 'network_id' not specified");
    neutronError(
      await admin("POST", "/v2.0/segments", {
        segment: { network_id: NIL, network_type: "vlan", physical_network: "q" },
      }),
      404,
      "NetworkNotFound",
    );
    neutronError(
      await alice("POST", "/v2.0/segments", {
        segment: { network_id: n.id, network_type: "vlan", physical_network: "seg-c" },
      }),
      403,
      "PolicyNotAuthorized",
    );
    expect(
      neutronError(
        await admin("PUT", `/v2.0/segments/${second.id}`, { segment: { segmentation_id: 9 } }),
        400,
        "HTTPBadRequest",
      ),
    ).toBe("Cannot update read-only attribute segmentation_id");
    const sub = await made(admin, "subnets", "subnet", {
      network_id: n.id,
      segment_id: second.id,
      ip_version: 4,
      cidr: "10.77.2.0/24",
      name: "on-seg2",
    });
    expect(sub.segment_id).toBe(second.id);
    neutronError(await admin("DELETE", `/v2.0/segments/${second.id}`), 409, "SegmentInUse");
    neutronError(await admin("GET", `/v2.0/segments/${NIL}`), 404, "SegmentNotFound");
    // Segments are shown to admins only, even of a shared network.
    await admin("PUT", `/v2.0/networks/${n.id}`, { network: { shared: true } });
    expect((await alice("GET", `/v2.0/networks/${n.id}`)).status).toBe(200);
    expect((await alice("GET", `/v2.0/segments?network_id=${n.id}`)).body.segments).toEqual([]);
    neutronError(await alice("GET", `/v2.0/segments/${first.id}`), 404, "SegmentNotFound");
    expect((await admin("DELETE", `/v2.0/subnets/${sub.id}`)).status).toBe(204);
    expect((await admin("DELETE", `/v2.0/segments/${second.id}`)).status).toBe(204);
    neutronError(await admin("GET", `/v2.0/segments/${second.id}`), 404, "SegmentNotFound");
  });
});

describe("subnets", () => {
  it("on a network with several segments every subnet needs one; IPv6 is a clear 400", async () => {
    const n = await made(admin, "networks", "network", {
      name: "two-segs",
      segments: [
        {
          "provider:network_type": "vlan",
          "provider:physical_network": "sub-a",
          "provider:segmentation_id": 301,
        },
        {
          "provider:network_type": "vlan",
          "provider:physical_network": "sub-b",
          "provider:segmentation_id": 302,
        },
      ],
    });
    const segs = (await admin("GET", `/v2.0/segments?network_id=${n.id}&sort_key=physical_network`)).body
      .segments;
    expect(segs.map((s: any) => s.physical_network)).toEqual(["sub-a", "sub-b"]);
    neutronError(
      await admin("POST", "/v2.0/subnets", {
        subnet: { network_id: n.id, ip_version: 4, cidr: "10.78.0.0/24" },
      }),
      400,
      "HTTPBadRequest",
    );
    const s = await made(admin, "subnets", "subnet", {
      network_id: n.id,
      segment_id: segs[0].id,
      ip_version: 4,
      cidr: "10.78.1.0/24",
      name: "a",
      allocation_pools: [{ start: "10.78.1.10", end: "10.78.1.100" }],
      dns_nameservers: ["10.0.0.53"],
      host_routes: [{ destination: "10.200.0.0/16", nexthop: "10.78.1.254" }],
    });
    expect(s).toMatchObject({
      network_id: n.id,
      segment_id: segs[0].id,
      ip_version: 4,
      cidr: "10.78.1.0/24",
      gateway_ip: "10.78.1.1",
      enable_dhcp: true,
      allocation_pools: [{ start: "10.78.1.10", end: "10.78.1.100" }],
      dns_nameservers: ["10.0.0.53"],
      host_routes: [{ destination: "10.200.0.0/16", nexthop: "10.78.1.254" }],
      subnetpool_id: null,
      ipv6_address_mode: null,
    });
    const v6 = await admin("POST", "/v2.0/subnets", {
      subnet: { network_id: n.id, segment_id: segs[1].id, ip_version: 6, cidr: "2001:db8::/64" },
    });
    expect(neutronError(v6, 400, "InvalidInput")).toMatch(/IPv6/);
    neutronError(
      await admin("POST", "/v2.0/subnets", {
        subnet: {
          network_id: n.id,
          segment_id: segs[1].id,
          ip_version: 4,
          cidr: "10.78.2.0/24",
          ipv6_ra_mode: "slaac",
        },
      }),
      400,
      "HTTPBadRequest",
    );
    neutronError(
      await admin("POST", "/v2.0/subnets", {
        subnet: {
          network_id: n.id,
          segment_id: segs[1].id,
          ip_version: 4,
          cidr: "10.78.2.0/24",
          gateway_ip: "10.78.2.5",
          allocation_pools: [{ start: "10.78.2.2", end: "10.78.2.20" }],
        },
      }),
      409,
      "GatewayConflictWithAllocationPools",
    );
    neutronError(
      await admin("POST", "/v2.0/subnets", {
        subnet: { network_id: NIL, ip_version: 4, cidr: "10.79.0.0/24" },
      }),
      404,
      "NetworkNotFound",
    );
    const upd = await admin("PUT", `/v2.0/subnets/${s.id}`, {
      subnet: { name: "a2", gateway_ip: null, dns_nameservers: [] },
    });
    expect(upd.status).toBe(200);
    expect(upd.body.subnet).toMatchObject({ name: "a2", gateway_ip: null, dns_nameservers: [] });
    expect(
      neutronError(
        await admin("PUT", `/v2.0/subnets/${s.id}`, { subnet: { cidr: "10.1.0.0/16" } }),
        400,
        "HTTPBadRequest",
      ),
    ).toBe("Cannot update read-only attribute cidr");
    neutronError(await admin("GET", `/v2.0/subnets/${NIL}`), 404, "SubnetNotFound");
  });

  it("a subnet larger than /16 works", async () => {
    const n = await made(alice, "networks", "network", { name: "big" });
    const s = await made(alice, "subnets", "subnet", {
      network_id: n.id,
      ip_version: 4,
      cidr: "10.128.0.0/12",
    });
    expect(s.cidr).toBe("10.128.0.0/12");
    expect(s.project_id).toBe("p1");
  });

  it("from a subnet pool by prefixlen; the default pool serves use_default_subnetpool", async () => {
    const pool = await made(admin, "subnetpools", "subnetpool", {
      name: "pool1",
      prefixes: ["10.90.0.0/16"],
      default_prefixlen: 26,
      min_prefixlen: 24,
      max_prefixlen: 28,
      is_default: true,
      shared: true,
    });
    expect(pool).toMatchObject({
      name: "pool1",
      prefixes: ["10.90.0.0/16"],
      default_prefixlen: 26,
      min_prefixlen: 24,
      max_prefixlen: 28,
      is_default: true,
      shared: true,
      ip_version: 4,
    });
    const n = await made(alice, "networks", "network", { name: "pooled" });
    const a = await made(alice, "subnets", "subnet", {
      network_id: n.id,
      ip_version: 4,
      subnetpool_id: pool.id,
      prefixlen: 28,
    });
    expect(a.subnetpool_id).toBe(pool.id);
    expect(a.cidr).toMatch(/^10\.90\.\d+\.\d+\/28$/);
    const b = await made(alice, "subnets", "subnet", {
      network_id: n.id,
      ip_version: 4,
      use_default_subnetpool: true,
    });
    expect(b.cidr).toMatch(/\/26$/);
    expect(b.subnetpool_id).toBe(pool.id);
    neutronError(
      await alice("POST", "/v2.0/subnets", {
        subnet: { network_id: n.id, ip_version: 4, subnetpool_id: pool.id, prefixlen: 8 },
      }),
      400,
      "HTTPBadRequest",
    );
    // Only admins make default pools; a second default is refused.
    neutronError(
      await alice("POST", "/v2.0/subnetpools", {
        subnetpool: { name: "x", prefixes: ["10.91.0.0/16"], is_default: true },
      }),
      403,
      "PolicyNotAuthorized",
    );
    neutronError(
      await admin("POST", "/v2.0/subnetpools", {
        subnetpool: { name: "x", prefixes: ["10.92.0.0/16"], is_default: true },
      }),
      400,
      "HTTPBadRequest",
    );
    expect(
      neutronError(
        await admin("POST", "/v2.0/subnetpools", { subnetpool: { prefixes: ["10.93.0.0/16"] } }),
        400,
        "HTTPBadRequest",
      ),
    ).toBe("Failed to parse request. Required attribute 'name' not specified");
    neutronError(
      await admin("POST", "/v2.0/subnetpools", { subnetpool: { name: "v6", prefixes: ["2001:db8::/32"] } }),
      400,
      "InvalidInput",
    );
    const grown = await admin("PUT", `/v2.0/subnetpools/${pool.id}`, {
      subnetpool: { prefixes: ["10.90.0.0/16", "10.94.0.0/16"], name: "pool1b" },
    });
    expect(grown.status).toBe(200);
    expect(grown.body.subnetpool).toMatchObject({
      name: "pool1b",
      prefixes: ["10.90.0.0/16", "10.94.0.0/16"],
    });
    const listed = await alice("GET", "/v2.0/subnetpools?is_default=true");
    expect(listed.body.subnetpools.map((p: any) => p.id)).toEqual([pool.id]);
    neutronError(await admin("GET", `/v2.0/subnetpools/${NIL}`), 404, "SubnetPoolNotFound");
    // A pool subnets were taken from is not deleted.
    neutronError(await admin("DELETE", `/v2.0/subnetpools/${pool.id}`), 400, "SubnetPoolDeleteError");
  });

  it("a port in use keeps its subnet and network (SubnetInUse, NetworkInUse); otherwise subnets go with the network", async () => {
    const n = await made(alice, "networks", "network", { name: "held" });
    const s = await made(alice, "subnets", "subnet", {
      network_id: n.id,
      ip_version: 4,
      cidr: "10.96.0.0/24",
    });
    const netRpc = serviceClient(NetworkService, mesh.url("network-adapter"));
    const { port } = await asAdmin(() =>
      netRpc.createPort({
        networkId: n.id,
        projectId: "p1",
        deviceId: "some-device",
        deviceOwner: "compute:nova",
      }),
    );
    expect(port!.fixedIps[0]!.subnetId).toBe(s.id);
    expect(neutronError(await alice("DELETE", `/v2.0/subnets/${s.id}`), 409, "SubnetInUse")).toMatch(
      /One or more ports have an IP allocation from this subnet/,
    );
    expect(neutronError(await alice("DELETE", `/v2.0/networks/${n.id}`), 409, "NetworkInUse")).toContain(
      port!.id,
    );
    await asAdmin(() => netRpc.deletePort({ id: port!.id }));
    expect((await alice("DELETE", `/v2.0/networks/${n.id}`)).status).toBe(204);
    neutronError(await alice("GET", `/v2.0/subnets/${s.id}`), 404, "SubnetNotFound");
  });
});

describe("lists: fields, filters, sorting, pagination", () => {
  const names = ["ls-c", "ls-a", "ls-e", "ls-b", "ls-d"];
  beforeAll(async () => {
    for (const name of names)
      await made(callAs(mesh, "carol:p3"), "networks", "network", { name, description: `d-${name}` });
  });
  const carol = () => callAs(mesh, "carol:p3");

  it("fields (repeatable) keeps only the named attributes", async () => {
    const r = await carol()("GET", "/v2.0/networks?fields=id&fields=name&name=ls-a");
    expect(r.status).toBe(200);
    expect(r.body.networks).toHaveLength(1);
    expect(Object.keys(r.body.networks[0]).sort()).toEqual(["id", "name"]);
    const one = await carol()("GET", `/v2.0/networks/${r.body.networks[0].id}?fields=name`);
    expect(one.body.network).toEqual({ name: "ls-a" });
  });

  it("filters by attribute, with repeated values as alternatives; unknown filters are 400s", async () => {
    const r = await carol()("GET", "/v2.0/networks?name=ls-a&name=ls-d&fields=name");
    expect(r.body.networks.map((n: any) => n.name).sort()).toEqual(["ls-a", "ls-d"]);
    const shared = await carol()("GET", "/v2.0/networks?shared=false&project_id=p3&fields=name");
    expect(shared.body.networks).toHaveLength(5);
    expect(neutronError(await carol()("GET", "/v2.0/networks?colour=red"), 400, "HTTPBadRequest")).toBe(
      "colour is an invalid attribute for filtering",
    );
    neutronError(await carol()("GET", "/v2.0/networks?shared=maybe"), 400, "InvalidInput");
  });

  it("sorts by sort_key/sort_dir pairs", async () => {
    const asc = await carol()("GET", "/v2.0/networks?project_id=p3&sort_key=name&sort_dir=asc&fields=name");
    expect(asc.body.networks.map((n: any) => n.name)).toEqual([...names].sort());
    const desc = await carol()("GET", "/v2.0/networks?project_id=p3&sort_key=name&sort_dir=desc&fields=name");
    expect(desc.body.networks.map((n: any) => n.name)).toEqual([...names].sort().reverse());
    expect(
      neutronError(
        await carol()("GET", "/v2.0/networks?sort_key=name&sort_dir=asc&sort_dir=desc"),
        400,
        "HTTPBadRequest",
      ),
    ).toBe("The number of sort_keys and sort_dirs must be same");
    neutronError(await carol()("GET", "/v2.0/networks?sort_key=name&sort_dir=up"), 400, "HTTPBadRequest");
    expect(neutronError(await carol()("GET", "/v2.0/networks?sort_key=colour"), 400, "HTTPBadRequest")).toBe(
      "colour is an invalid attribute for sort_key",
    );
  });

  it("pages by limit/marker with next and previous links, and backwards with page_reverse", async () => {
    const base = "/v2.0/networks?project_id=p3&sort_key=name&sort_dir=asc&fields=id&fields=name";
    const p1 = await carol()("GET", `${base}&limit=2`);
    expect(p1.body.networks.map((n: any) => n.name)).toEqual(["ls-a", "ls-b"]);
    const links1 = p1.body.networks_links;
    expect(links1.map((l: any) => l.rel)).toEqual(["next"]);
    const next = new URL(links1[0].href);
    expect(`${next.origin}`).toBe(mesh.networkApiUrl);
    expect(next.searchParams.get("marker")).toBe(p1.body.networks[1].id);
    const p2 = await carol()("GET", `${next.pathname}${next.search}`);
    expect(p2.body.networks.map((n: any) => n.name)).toEqual(["ls-c", "ls-d"]);
    expect(p2.body.networks_links.map((l: any) => l.rel)).toEqual(["next", "previous"]);
    const last = new URL(p2.body.networks_links[0].href);
    const p3 = await carol()("GET", `${last.pathname}${last.search}`);
    expect(p3.body.networks.map((n: any) => n.name)).toEqual(["ls-e"]);
    expect(p3.body.networks_links.map((l: any) => l.rel)).toEqual(["previous"]);
    const prev = new URL(p3.body.networks_links[0].href);
    expect(prev.searchParams.get("page_reverse")).toBe("True");
    const back = await carol()("GET", `${prev.pathname}${prev.search}`);
    expect(back.body.networks.map((n: any) => n.name)).toEqual(["ls-c", "ls-d"]);
    // Without a limit: everything, no links.
    const all = await carol()("GET", base);
    expect(all.body.networks).toHaveLength(5);
    expect(all.body.networks_links).toBeUndefined();
    expect(neutronError(await carol()("GET", "/v2.0/networks?limit=-1"), 400, "HTTPBadRequest")).toBe(
      "Limit must be an integer 0 or greater and not '-1'",
    );
    neutronError(await carol()("GET", "/v2.0/networks?limit=x"), 400, "HTTPBadRequest");
  });
});
