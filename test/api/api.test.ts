// The compute API over the whole mesh: versions and microversions, get-me-a-network (2.37), the
// nova-network deprecations, auth and project scoping, errors in Nova's shape — and a property
// test over every route that nothing a client can send gets a 5xx, and that a refused request
// changes nothing the mesh holds.
import { ConductorService } from "@stratus/contracts/compute/v1";
import { defaultRoles, runWithContext, serviceClient, userContext } from "@stratus/runtime";
import type { Mesh } from "@stratus/runtime/testing";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  asAdmin,
  caller,
  createRoutedNetwork,
  type NetworkClient,
  projectId,
  rest,
  startApiMesh,
  until,
  waitServer,
} from "./helpers.js";
import { meshStateReader, settledState } from "./mesh-state.js";
import { knownBreakers, randomRequest } from "./random-requests.js";

const IMAGE = "a9e6c1b4-5f0d-4c36-8a57-2f4f6b1c0c01";
let mesh: Mesh;
let net: NetworkClient;
const call = (method: string, path: string, opts: Parameters<typeof rest>[3] = {}) =>
  rest(mesh.apiUrl, method, path, opts);
const boot = (networks: unknown, opts: { token?: string; version?: string; name?: string } = {}) =>
  call("POST", "/v2.1/servers", {
    token: opts.token ?? "alice:p1",
    version: opts.version ?? "2.37",
    body: {
      server: {
        name: opts.name ?? "s",
        imageRef: IMAGE,
        flavorRef: "1",
        ...(networks === undefined ? {} : { networks }),
      },
    },
  });

beforeAll(async () => {
  ({ mesh, net } = await startApiMesh());
});
afterAll(async () => {
  await mesh?.close();
});

describe("versions and microversions", () => {
  it("GET / lists v2.0 and v2.1; GET /v2.1 gives the range", async () => {
    const root = await call("GET", "/", { token: null });
    expect(root.status).toBe(200);
    expect(root.body.versions.map((v: any) => v.id).sort()).toEqual(["v2.0", "v2.1"]);
    const v21 = await call("GET", "/v2.1", { token: null });
    expect(v21.body.version.min_version).toBe("2.1");
    expect(Number(v21.body.version.version.split(".")[1])).toBeGreaterThanOrEqual(44);
  });

  it("negotiates: latest, both headers echoed with Vary, 406 out of range, 400 malformed", async () => {
    const max = (await call("GET", "/v2.1", { token: null })).body.version.version;
    const latest = await call("GET", "/v2.1/flavors", { version: "latest" });
    expect(latest.headers.get("openstack-api-version")).toBe(`compute ${max}`);
    expect(latest.headers.get("x-openstack-nova-api-version")).toBe(max);
    expect(latest.headers.get("vary")).toMatch(/OpenStack-API-Version/i);
    const legacy = await call("GET", "/v2.1/flavors", {
      headers: { "x-openstack-nova-api-version": "2.30" },
    });
    expect(legacy.headers.get("openstack-api-version")).toBe("compute 2.30");
    const none = await call("GET", "/v2.1/flavors");
    expect(none.headers.get("openstack-api-version")).toBe("compute 2.1");
    for (const v of ["3.0", "2.0", "2.9999"]) {
      const r = await call("GET", "/v2.1/flavors", { version: v });
      expect(r.status, v).toBe(406);
      expect(r.body.notAcceptable?.code ?? r.body.computeFault?.code).toBe(406);
    }
    for (const v of ["abc", "2", "2.x"]) {
      expect((await call("GET", "/v2.1/flavors", { version: v })).status, v).toBe(400);
    }
  });
});

describe("auth, errors and scoping", () => {
  it("401 without a token; every answer carries a request id, errors in Nova's shape", async () => {
    const r = await call("GET", "/v2.1/servers", { token: null });
    expect(r.status).toBe(401);
    expect(r.headers.get("x-openstack-request-id")).toMatch(/^req-[0-9a-f-]{36}$/);
    const nf = await call("GET", "/v2.1/servers/00000000-0000-4000-8000-000000000000");
    expect(nf.status).toBe(404);
    expect(nf.body.itemNotFound.code).toBe(404);
    expect(nf.headers.get("x-openstack-request-id")).toMatch(/^req-/);
  });

  it("keeps a caller's well-formed request id", async () => {
    const id = "req-12345678-1234-4234-8234-123456789abc";
    const r = await call("GET", "/v2.1/flavors", { headers: { "x-openstack-request-id": id } });
    expect(r.headers.get("x-openstack-request-id")).toBe(id);
  });

  it("bad bodies are 400, oversize bodies 413", async () => {
    const bad = await call("POST", "/v2.1/servers", { version: "2.37", body: "{not json" });
    expect(bad.status).toBe(400);
    expect(bad.body.badRequest.code).toBe(400);
    const big = await call("POST", "/v2.1/servers", {
      version: "2.37",
      body: { server: { name: "x".repeat(200_000) } },
    });
    expect(big.status).toBe(413);
  });
});

describe("get me a network (2.37)", () => {
  it("networks is required from 2.37", async () => {
    const r = await boot(undefined);
    expect(r.status).toBe(400);
    expect(r.body.badRequest.message).toMatch(/networks/);
  });

  it("auto with no usable network and no default external network: 409 with the reason, nothing made", async () => {
    const r = await boot("auto", { token: "carol:p9" });
    expect(r.status).toBe(409);
    expect(r.body.conflictingRequest.message).toMatch(/external network|subnet pool|auto-allocat/i);
    const p9 = await projectId("p9");
    const nets = await asAdmin(() => net.listNetworks({ projectId: p9 }));
    expect(nets.networks).toHaveLength(0);
    const servers = await call("GET", "/v2.1/servers", { token: "carol:p9" });
    expect(servers.body.servers).toHaveLength(0);
  });

  it("none boots without networking; an unknown network is 400", async () => {
    const r = await boot("none");
    expect(r.status).toBe(202);
    expect((await waitServer(mesh.apiUrl, r.body.server.id)).status).toBe("ACTIVE");
    const unknown = await boot([{ uuid: "00000000-0000-4000-8000-000000000001" }]);
    expect(unknown.status).toBe(400);
    expect(unknown.body.badRequest.message).toMatch(/00000000-0000-4000-8000-000000000001/);
  });

  it("auto with one usable network uses it; with several it is 409, as is an omitted list before 2.37", async () => {
    const first = await createRoutedNetwork(net, "p3", "p3-a", 3);
    const one = await boot("auto", { token: "dave:p3" });
    expect(one.status).toBe(202);
    const server = await waitServer(mesh.apiUrl, one.body.server.id, "dave:p3");
    expect(server.status).toBe("ACTIVE");
    expect(Object.keys(server.addresses)).toEqual(["p3-a"]);
    expect(server.addresses["p3-a"][0]["OS-EXT-IPS:type"]).toBe("fixed");
    expect(server.addresses["p3-a"][0]["OS-EXT-IPS-MAC:mac_addr"]).toMatch(/^fa:16:3e:/);
    expect(first.id).toBeTruthy();

    await createRoutedNetwork(net, "p3", "p3-b", 4);
    const several = await boot("auto", { token: "dave:p3" });
    expect(several.status).toBe(409);
    expect(several.body.conflictingRequest.message).toMatch(/[Mm]ultiple possible networks/);
    const old = await boot(undefined, { token: "dave:p3", version: "2.36" });
    expect(old.status).toBe(409);
  });

  it("a port already in use is 409", async () => {
    const network = await createRoutedNetwork(net, "p4", "p4-a", 5);
    const p4 = await projectId("p4");
    const port = (await asAdmin(() => net.createPort({ networkId: network.id, projectId: p4 }))).port!;
    const a = await boot([{ port: port.id }], { token: "erin:p4" });
    expect(a.status).toBe(202);
    await waitServer(mesh.apiUrl, a.body.server.id, "erin:p4");
    const b = await boot([{ port: port.id }], { token: "erin:p4" });
    expect(b.status).toBe(409);
    // Another project cannot see p4's server.
    expect((await call("GET", `/v2.1/servers/${a.body.server.id}`, { token: "alice:p1" })).status).toBe(404);
    // The build's steps are readable.
    const actions = await call("GET", `/v2.1/servers/${a.body.server.id}/os-instance-actions`, {
      token: "erin:p4",
    });
    expect(actions.status).toBe(200);
    expect(actions.body.instanceActions[0].action).toBe("create");
  });
});

describe("nova-network is gone", () => {
  it("os-virtual-interfaces: 400 below 2.44, 404 from 2.44", async () => {
    const s = await boot("none", { name: "vif" });
    const id = s.body.server.id;
    expect((await call("GET", `/v2.1/servers/${id}/os-virtual-interfaces`, { version: "2.43" })).status).toBe(
      400,
    );
    expect((await call("GET", `/v2.1/servers/${id}/os-virtual-interfaces`, { version: "2.44" })).status).toBe(
      404,
    );
  });

  it("GET /limits has the network limits below 2.36 only; os-networks answers below 2.36 only", async () => {
    const at235 = (await call("GET", "/v2.1/limits", { version: "2.35" })).body.limits.absolute;
    expect(at235.maxTotalFloatingIps).toBe(50);
    expect(at235.maxSecurityGroupRules).toBe(100);
    const at236 = (await call("GET", "/v2.1/limits", { version: "2.36" })).body.limits.absolute;
    expect(at236.maxTotalFloatingIps).toBeUndefined();
    expect(at236.maxTotalInstances).toBe(10);
    expect((await call("GET", "/v2.1/os-networks", { version: "2.35" })).status).toBe(200);
    expect((await call("GET", "/v2.1/os-networks", { version: "2.36" })).status).toBe(404);
  });
});

describe("server lists follow the servers' changes", () => {
  // The api keeps list answers until the conductor's change events say otherwise (this mesh's
  // cache lifetime is ten minutes, so only the events can refresh them).
  const detail = async (token: string) =>
    (await call("GET", "/v2.1/servers/detail", { token, version: "2.37" })).body.servers as {
      id: string;
      status: string;
    }[];

  it("a list shows a build's progress, this api's own writes at once, and another replica's delete", async () => {
    const token = "carol:p-lists";
    expect(await detail(token)).toEqual([]);
    const one = await boot("none", { token, name: "l1" });
    expect(one.status).toBe(202);
    // Read-your-writes: the empty list above is not served again.
    expect((await detail(token)).map((s) => s.id)).toEqual([one.body.server.id]);
    // The build's steps are written by the conductor alone: only its events refresh the list.
    await until(
      "list shows ACTIVE",
      async () => (await detail(token)).find((s) => s.id === one.body.server.id)?.status === "ACTIVE",
    );
    const two = await boot("none", { token, name: "l2" });
    await until("second ACTIVE", async () => (await detail(token)).every((s) => s.status === "ACTIVE"));
    expect((await detail(token)).length).toBe(2);

    expect((await call("DELETE", `/v2.1/servers/${one.body.server.id}`, { token })).status).toBe(204);
    expect((await detail(token)).map((s) => s.id)).toEqual([two.body.server.id]);
    // A delete that does not pass through this api (another replica, or the conductor's RPC).
    const carol = await caller(token);
    await runWithContext(
      userContext({ userId: carol.userId, projectId: carol.projectId, roles: defaultRoles(false) }),
      () => serviceClient(ConductorService, mesh.url("conductor")).deleteServer({ id: two.body.server.id }),
    );
    await until("list empty", async () => (await detail(token)).length === 0);
    // Another project's lists never mixed in.
    expect((await detail("dave:p-lists-other")).length).toBe(0);
  });
});

describe("no client input gets a 5xx, and no refused request changes anything", () => {
  it("holds over random requests to every route, with the input classes that broke it before", async () => {
    const read = meshStateReader(mesh);
    const target = await boot("none", { name: "fuzz-target" });
    expect(target.status).toBe(202);
    const { networks } = await asAdmin(() => net.listNetworks({}));
    const known = { image: IMAGE, serverIds: [target.body.server.id], networkIds: networks.map((n) => n.id) };
    let state = await settledState(read);
    const answered: Record<string, number> = {};
    const [alice, admin] = await Promise.all([caller("alice:p1"), caller("admin:admin")]);
    await fc.assert(
      fc.asyncProperty(randomRequest(known, [alice, alice, admin]), async (r) => {
        const res = await fetch(`${mesh.apiUrl}${r.path}`, {
          method: r.method,
          headers: r.headers,
          ...(r.body === undefined ? {} : { body: r.body }),
        });
        const text = await res.text();
        const what = `${r.method} ${r.path.slice(0, 200)} ${r.body?.slice(0, 200) ?? ""}`;
        const kind = `${Math.floor(res.status / 100)}xx`;
        answered[kind] = (answered[kind] ?? 0) + 1;
        if (res.status >= 500) throw new Error(`${what} -> ${res.status} ${text}`);
        if (res.status >= 400) {
          const [fault] = Object.values(JSON.parse(text)) as { code: number; message: string }[];
          expect(fault?.code, what).toBe(res.status);
          expect(typeof fault?.message, what).toBe("string");
          // Nothing the mesh holds changed (a create or delete is written before it is answered).
          expect(await read(), what).toEqual(state);
        } else if (r.method !== "GET") {
          const created = (JSON.parse(text || "{}") as { server?: { id?: string } }).server?.id;
          if (created) known.serverIds.push(created);
          state = await settledState(read);
        }
      }),
      {
        numRuns: 300,
        examples: [...knownBreakers(known, alice.token), ...knownBreakers(known, admin.token)].map((r) => [
          r,
        ]),
      },
    );
    // The run reached past the edge's refusals: some requests were answered, some refused.
    expect(answered["2xx"]).toBeGreaterThan(0);
    expect(answered["4xx"]).toBeGreaterThan(0);
  }, 600_000);
});

describe("the request id crosses every hop", () => {
  it("a boot's request id appears in the logs of the api, conductor, scheduler, network-adapter and compute agent", async () => {
    const id = "req-0badc0de-1234-4234-8234-123456789abc";
    const network = await createRoutedNetwork(net, "p5", "p5-a", 6);
    const r = await call("POST", "/v2.1/servers", {
      token: "frank:p5",
      version: "2.37",
      headers: { "x-openstack-request-id": id },
      body: { server: { name: "traced", imageRef: IMAGE, flavorRef: "1", networks: [{ uuid: network.id }] } },
    });
    expect(r.status).toBe(202);
    expect(r.headers.get("x-openstack-request-id")).toBe(id);
    expect((await waitServer(mesh.apiUrl, r.body.server.id, "frank:p5")).status).toBe("ACTIVE");
    const seen = (name: "api" | "conductor" | "scheduler" | "network-adapter" | "compute-agent") =>
      mesh.services[name]!.output.some((line) => line.includes(`"request_id":"${id}"`));
    const hops = ["api", "conductor", "scheduler", "network-adapter", "compute-agent"] as const;
    expect(Object.fromEntries(hops.map((h) => [h, seen(h)]))).toEqual(
      Object.fromEntries(hops.map((h) => [h, true])),
    );
  });
});
