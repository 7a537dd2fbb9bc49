// The Networking API's property: nothing a client can send gets a 5xx, every refusal is a
// NeutronError, and a refused request changes nothing the network-adapter holds.
import { NetworkService } from "@stratus/contracts/network/v1";
import { serviceClient } from "@stratus/runtime";
import type { Mesh } from "@stratus/runtime/testing";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { asAdmin } from "../api/helpers.js";
import {
  knownNetworkingBreakers,
  type NetworkingIds,
  randomNetworkingRequest,
} from "../api/random-requests.js";
import { callAs, startNetworkingMesh } from "./helpers.js";

let mesh: Mesh;

beforeAll(async () => {
  mesh = await startNetworkingMesh();
});
afterAll(async () => {
  await mesh?.close();
});

/** Everything the owner holds of the Networking API's resources, as an admin reads it. */
function networkingState(m: Mesh) {
  const net = serviceClient(NetworkService, m.url("network-adapter"));
  return () =>
    asAdmin(async () => {
      const [n, seg, sub, pools, ports, routers, quotas] = await Promise.all([
        net.listNetworks({}),
        net.listSegments({}),
        net.listSubnets({}),
        net.listSubnetPools({}),
        net.listPorts({}),
        net.listRouters({}),
        net.listQuotas({}),
      ]);
      return {
        networks: n.networks.map((x) => `${x.id} ${x.name} ${x.revisionNumber} ${x.subnetIds.length}`).sort(),
        segments: seg.segments.map((x) => `${x.id} ${x.name} ${x.revisionNumber}`).sort(),
        subnets: sub.subnets.map((x) => `${x.id} ${x.cidr} ${x.revisionNumber}`).sort(),
        pools: pools.pools.map((x) => `${x.id} ${x.revisionNumber}`).sort(),
        ports: ports.ports
          .map((x) => `${x.id} ${x.revisionNumber} ${x.fixedIps.map((f) => f.ipAddress).join(",")}`)
          .sort(),
        routers: routers.routers.map((x) => `${x.id} ${x.revisionNumber} ${x.interfaces.length}`).sort(),
        quotas: quotas.quotas.map((x) => `${x.projectId} ${JSON.stringify(x.quota)}`).sort(),
      };
    });
}

describe("no client input gets a 5xx from the Networking API, and no refused request changes anything", () => {
  it("holds over random requests to every route", async () => {
    const admin = callAs(mesh, "admin:admin");
    const routed = await admin("POST", "/v2.0/networks", {
      network: {
        name: "fuzz-routed",
        shared: true,
        "provider:network_type": "vlan",
        "provider:physical_network": "physnet-rack1",
        "provider:segmentation_id": 900,
      },
    });
    expect(routed.status).toBe(201);
    const segs = (await admin("GET", `/v2.0/segments?network_id=${routed.body.network.id}`)).body.segments;
    const sub = await admin("POST", "/v2.0/subnets", {
      subnet: {
        network_id: routed.body.network.id,
        segment_id: segs[0].id,
        ip_version: 4,
        cidr: "10.240.0.0/24",
      },
    });
    expect(sub.status).toBe(201);
    const pool = await admin("POST", "/v2.0/subnetpools", {
      subnetpool: { name: "fuzz-pool", prefixes: ["10.241.0.0/16"], shared: true },
    });
    expect(pool.status).toBe(201);
    const known: NetworkingIds = {
      network: [routed.body.network.id],
      segment: segs.map((s: any) => s.id),
      subnet: [sub.body.subnet.id],
      subnetpool: [pool.body.subnetpool.id],
      port: [],
      router: [],
    };
    const read = networkingState(mesh);
    let state = await read();
    const answered: Record<string, number> = {};
    await fc.assert(
      fc.asyncProperty(randomNetworkingRequest(known, ["alice:p1", "alice:p1", "admin:admin"]), async (r) => {
        const res = await fetch(`${mesh.networkApiUrl}${r.path}`, {
          method: r.method,
          headers: r.headers,
          ...(r.body === undefined ? {} : { body: r.body }),
        });
        const text = await res.text();
        const what = `${r.method} ${r.path.slice(0, 200)} ${r.body?.slice(0, 200) ?? ""}`;
        const kind = `${Math.floor(res.status / 100)}xx`;
        answered[kind] = (answered[kind] ?? 0) + 1;
        if (res.status >= 500) throw new Error(`${what} -> ${res.status} ${text}`);
        if (res.status === 401) {
          // A refused token: keystonemiddleware's body, as before Neutron itself sees the request.
          const err = (JSON.parse(text) as { error?: { code: unknown; title: unknown } }).error;
          expect(err, what).toMatchObject({ code: 401, title: "Unauthorized" });
          expect(await read(), what).toEqual(state);
        } else if (res.status >= 400) {
          const err = (
            JSON.parse(text) as { NeutronError?: { type: unknown; message: unknown; detail: unknown } }
          ).NeutronError;
          expect(typeof err?.type, what).toBe("string");
          expect(typeof err?.message, what).toBe("string");
          expect(err?.detail, what).toBe("");
          expect(await read(), what).toEqual(state);
        } else if (r.method !== "GET" || r.path.startsWith("/v2.0/auto-allocated-topology/")) {
          // (A topology's GET makes it.)
          const made = JSON.parse(text || "{}") as Record<string, { id?: string }>;
          for (const [singular, v] of Object.entries(made)) if (v?.id) known[singular]?.push(v.id);
          state = await read();
        }
      }),
      {
        numRuns: 300,
        examples: [...knownNetworkingBreakers("alice:p1"), ...knownNetworkingBreakers("admin:admin")].map(
          (r) => [r],
        ),
      },
    );
    expect(answered["2xx"]).toBeGreaterThan(0);
    expect(answered["4xx"]).toBeGreaterThan(0);
  }, 600_000);
});
