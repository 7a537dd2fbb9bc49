// Every list takes Neutron's filters, sort keys and pages (ListQuery), applied by the database
// with the visibility rules still in force: equality on any public field (values as
// alternatives), the related filters (provider attributes, fixed_ips), sort keys and directions,
// a limit with a marker forwards and backwards with has_more, and refusals for unknown fields,
// values of the wrong type and markers the caller cannot see.
import { NetworkService } from "@stratus/contracts/network/v1";
import { serviceClient } from "@stratus/runtime";
import { type Mesh, startMesh } from "@stratus/runtime/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { asProject, type NetworkClient, refusal } from "./helpers.js";

describe("filters, sorting and pagination of every list", () => {
  let mesh: Mesh;
  let net: NetworkClient;
  const ids: Record<string, string> = {};

  beforeAll(async () => {
    mesh = await startMesh({ services: ["network-adapter"] });
    net = serviceClient(NetworkService, mesh.url("network-adapter"));
    for (const [name, project, shared] of [
      ["delta", "p-list", false],
      ["alpha", "p-list", true],
      ["echo", "p-list", false],
      ["charlie", "p-other", false],
      ["bravo", "p-list", false],
    ] as const) {
      ids[name] = (await net.createNetwork({ name, projectId: project, shared, mtu: 1400 + name.length }))
        .network!.id;
    }
    ids.vlan = (
      await net.createNetwork({
        name: "vlan-net",
        projectId: "p-admin",
        segments: [{ networkType: "vlan", physicalNetwork: "physnet-l", segmentationId: 77 }],
      })
    ).network!.id;
  });
  afterAll(async () => {
    await mesh?.close();
  });

  const names = (networks: { name: string }[]) => networks.map((n) => n.name);

  it("filters on any public field, values as alternatives, the related ones included", async () => {
    const byName = await net.listNetworks({
      query: { filters: [{ field: "name", values: ["alpha", "echo", "nope"] }] },
    });
    expect(names(byName.networks)).toEqual(["alpha", "echo"]);
    const shared = await net.listNetworks({
      query: {
        filters: [
          { field: "shared", values: ["True"] },
          { field: "tenant_id", values: ["p-list"] },
        ],
      },
    });
    expect(names(shared.networks)).toEqual(["alpha"]);
    const provider = await net.listNetworks({
      query: {
        filters: [
          { field: "provider:network_type", values: ["vlan"] },
          { field: "provider:segmentation_id", values: ["77"] },
        ],
      },
    });
    expect(provider.networks.map((n) => n.id)).toEqual([ids.vlan]);
    // A uuid that is none matches nothing, as in Neutron.
    expect(
      (await net.listNetworks({ query: { filters: [{ field: "id", values: ["x"] }] } })).networks,
    ).toEqual([]);
    // Visibility stays: another project's network is not found by its name.
    const seen = await asProject("p-list", () =>
      net.listNetworks({ query: { filters: [{ field: "name", values: ["charlie", "delta"] }] } }),
    );
    expect(names(seen.networks)).toEqual(["delta"]);

    const { network } = await net.createNetwork({ name: "with-ports" });
    const { subnet } = await net.createSubnet({ networkId: network!.id, cidr: "10.150.0.0/24" });
    const a = (await net.createPort({ networkId: network!.id, deviceOwner: "compute:nova" })).port!;
    await net.createPort({ networkId: network!.id });
    const byAddress = await net.listPorts({
      query: {
        filters: [
          {
            field: "fixed_ips",
            values: [`ip_address=${a.fixedIps[0]!.ipAddress}`, `subnet_id=${subnet!.id}`],
          },
        ],
      },
    });
    expect(byAddress.ports.map((p) => p.id)).toEqual([a.id]);
    const byOwner = await net.listPorts({
      networkId: network!.id,
      query: { filters: [{ field: "device_owner", values: ["compute:nova"] }] },
    });
    expect(byOwner.ports.map((p) => p.id)).toEqual([a.id]);
    expect(
      (
        await net.listSubnets({ query: { filters: [{ field: "cidr", values: ["10.150.0.0/24"] }] } })
      ).subnets.map((s) => s.id),
    ).toEqual([subnet!.id]);
    expect(
      (await net.listSegments({ query: { filters: [{ field: "physical_network", values: ["physnet-l"] }] } }))
        .segments,
    ).toHaveLength(1);
  });

  it("sorts by the keys given, then the id", async () => {
    const filters = [{ field: "tenant_id", values: ["p-list", "p-other"] }];
    const byName = await net.listNetworks({
      query: { filters, sorts: [{ field: "name", descending: true }] },
    });
    expect(names(byName.networks)).toEqual(["echo", "delta", "charlie", "bravo", "alpha"]);
    const byMtu = await net.listNetworks({
      query: { filters, sorts: [{ field: "mtu" }, { field: "name", descending: true }] },
    });
    expect(names(byMtu.networks)).toEqual(["echo", "delta", "bravo", "alpha", "charlie"]);
    expect(
      (await refusal(net.listNetworks({ query: { sorts: [{ field: "provider:network_type" }] } }))).kind,
    ).toBe("invalid_input");
  });

  it("pages with a limit and a marker, forwards and backwards", async () => {
    const query = {
      filters: [{ field: "tenant_id", values: ["p-list", "p-other"] }],
      sorts: [{ field: "name" }],
    };
    const first = await net.listNetworks({ query: { ...query, limit: 2 } });
    expect([names(first.networks), first.hasMore]).toEqual([["alpha", "bravo"], true]);
    const second = await net.listNetworks({ query: { ...query, limit: 2, marker: first.networks[1]!.id } });
    expect([names(second.networks), second.hasMore]).toEqual([["charlie", "delta"], true]);
    const last = await net.listNetworks({ query: { ...query, limit: 2, marker: second.networks[1]!.id } });
    expect([names(last.networks), last.hasMore]).toEqual([["echo"], false]);
    const back = await net.listNetworks({
      query: { ...query, limit: 2, marker: last.networks[0]!.id, pageReverse: true },
    });
    expect([names(back.networks), back.hasMore]).toEqual([["charlie", "delta"], true]);
    // The default order (oldest first) pages too.
    const oldest = await net.listNetworks({ query: { filters: query.filters, limit: 1, marker: ids.delta } });
    expect(names(oldest.networks)).toEqual(["alpha"]);
  });

  it("refuses unknown fields, values of the wrong type, negative limits and markers out of sight", async () => {
    const cases = [
      { filters: [{ field: "colour", values: ["red"] }] },
      { filters: [{ field: "shared", values: ["maybe"] }] },
      { filters: [{ field: "mtu", values: ["1e3"] }] },
      { filters: [{ field: "changed_since", values: ["yesterday"] }] },
      { sorts: [{ field: "colour" }] },
      { limit: -1 },
    ];
    for (const query of cases) {
      expect((await refusal(net.listNetworks({ query }))).kind).toBe("invalid_input");
    }
    expect(
      (await refusal(net.listPorts({ query: { filters: [{ field: "fixed_ips", values: ["mac=1"] }] } })))
        .kind,
    ).toBe("invalid_input");
    expect((await refusal(net.listNetworks({ query: { limit: 1, marker: "not-an-id" } }))).kind).toBe(
      "not_found",
    );
    const hidden = await refusal(
      asProject("p-list", () => net.listNetworks({ query: { limit: 1, marker: ids.charlie } })),
    );
    expect(hidden.kind).toBe("not_found");
    expect(hidden.message).toBe(`Network ${ids.charlie} could not be found`);
    const since = await net.listNetworks({
      query: {
        filters: [
          { field: "changed_since", values: ["2000-01-01T00:00:00Z"] },
          { field: "name", values: ["echo"] },
        ],
      },
    });
    expect(names(since.networks)).toEqual(["echo"]);
  });
});
