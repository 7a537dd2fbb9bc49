// The Networking API listener: its own port, version documents, the extension list, caller
// authentication, Neutron's error bodies for unknown paths (404), wrong methods (405) and bad
// bodies (400/413/415), and the request id.
import type { Mesh } from "@stratus/runtime/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EXTENSIONS } from "../../services/api/src/networking/extensions.js";
import { callAs, neutronError, startNetworkingMesh } from "./helpers.js";

let mesh: Mesh;
let admin: ReturnType<typeof callAs>;
let anon: ReturnType<typeof callAs>;

beforeAll(async () => {
  mesh = await startNetworkingMesh();
  admin = callAs(mesh, "admin:admin");
  anon = callAs(mesh, null);
});
afterAll(async () => {
  await mesh?.close();
});

describe("the Networking API listener", () => {
  it("serves on its own port, apart from the compute API", () => {
    expect(mesh.networkApiUrl).not.toBe(mesh.apiUrl);
  });

  it("GET / lists v2.0 without authentication; GET /v2.0 lists the core collections", async () => {
    const root = await anon("GET", "/");
    expect(root.status).toBe(200);
    expect(root.body.versions).toEqual([
      { id: "v2.0", status: "CURRENT", links: [{ href: `${mesh.networkApiUrl}/v2.0/`, rel: "self" }] },
    ]);
    const v2 = await admin("GET", "/v2.0");
    expect(v2.status).toBe(200);
    expect(v2.body.resources.map((r: any) => r.collection)).toEqual(
      expect.arrayContaining(["networks", "subnets", "subnetpools"]),
    );
    expect(v2.body.resources[0].links[0].href).toBe(`${mesh.networkApiUrl}/v2.0/networks`);
  });

  it("lists exactly the extensions of the table, each by its alias; an unknown alias is a 404", async () => {
    const r = await admin("GET", "/v2.0/extensions");
    expect(r.status).toBe(200);
    const aliases = r.body.extensions.map((e: any) => e.alias);
    expect(aliases).toEqual(EXTENSIONS.map((e) => e.alias));
    expect(new Set(aliases).size).toBe(aliases.length);
    for (const alias of ["segment", "provider", "multi-provider", "external-net", "subnet_allocation"]) {
      expect(aliases).toContain(alias);
    }
    const one = await admin("GET", "/v2.0/extensions/segment");
    expect(one.status).toBe(200);
    expect(one.body.extension).toMatchObject({ alias: "segment", name: "Segment", links: [] });
    neutronError(await admin("GET", "/v2.0/extensions/no-such-thing"), 404, "HTTPNotFound");
    neutronError(await admin("POST", "/v2.0/extensions", {}), 405, "HTTPMethodNotAllowed");
  });

  it("needs a caller: no or a malformed token is a 401 in Neutron's format", async () => {
    neutronError(await anon("GET", "/v2.0/networks"), 401, "HTTPUnauthorized");
    neutronError(await callAs(mesh, "nonsense")("GET", "/v2.0/networks"), 401, "HTTPUnauthorized");
  });

  it("answers 404 for unknown paths and 405 for a known path's other methods", async () => {
    neutronError(await admin("GET", "/v2.0/no-such-collection"), 404, "HTTPNotFound");
    neutronError(await admin("GET", "/v3/networks"), 404, "HTTPNotFound");
    neutronError(await admin("GET", "/v2.0/networks/a/b/c"), 404, "HTTPNotFound");
    neutronError(await admin("PUT", "/v2.0/networks", { network: {} }), 405, "HTTPMethodNotAllowed");
    neutronError(await admin("DELETE", "/v2.0/networks"), 405, "HTTPMethodNotAllowed");
    neutronError(await admin("POST", "/v2.0/networks/x", { network: {} }), 405, "HTTPMethodNotAllowed");
  });

  it("accepts a .json suffix as Neutron does", async () => {
    const r = await admin("GET", "/v2.0/networks.json");
    expect(r.status).toBe(200);
    expect(Array.isArray(r.body.networks)).toBe(true);
  });

  it("refuses bad bodies with 400s, and an unsupported content type with a 415", async () => {
    neutronError(await admin("POST", "/v2.0/networks", "{not json"), 400, "HTTPBadRequest");
    neutronError(await admin("POST", "/v2.0/networks"), 400, "HTTPBadRequest");
    expect(neutronError(await admin("POST", "/v2.0/networks", { net: {} }), 400, "HTTPBadRequest")).toBe(
      "Unable to find 'network' in request body",
    );
    expect(
      neutronError(
        await admin("POST", "/v2.0/networks", { network: { color: "red" } }),
        400,
        "HTTPBadRequest",
      ),
    ).toBe("Unrecognized attribute(s) 'color'");
    expect(
      neutronError(
        await admin("POST", "/v2.0/networks", { network: { id: "x", color: 1 } }),
        400,
        "HTTPBadRequest",
      ),
    ).toMatch(/^Unrecognized attribute\(s\) '(id, color|color, id)'$/);
    expect(
      neutronError(
        await admin("POST", "/v2.0/networks", { network: { shared: "maybe" } }),
        400,
        "HTTPBadRequest",
      ),
    ).toBe("Invalid input for shared. Reason: 'maybe' cannot be converted to boolean.");
    expect(
      neutronError(
        await admin("POST", "/v2.0/networks", { network: { name: "a\u0000b" } }),
        400,
        "HTTPBadRequest",
      ),
    ).toMatch(/NUL/);
    const deep = `{"network": ${"[".repeat(200)}${"]".repeat(200)}}`;
    neutronError(await admin("POST", "/v2.0/networks", deep), 400, "HTTPBadRequest");
    const r = await fetch(`${mesh.networkApiUrl}/v2.0/networks`, {
      method: "POST",
      headers: { "x-auth-token": "admin:admin", "content-type": "application/xml" },
      body: "<network/>",
    });
    expect(r.status).toBe(415);
    expect(((await r.json()) as any).NeutronError.type).toBe("HTTPUnsupportedMediaType");
    const big = await fetch(`${mesh.networkApiUrl}/v2.0/networks`, {
      method: "POST",
      headers: { "x-auth-token": "admin:admin", "content-type": "application/json" },
      body: JSON.stringify({ network: { name: "x".repeat(200_000) } }),
    });
    expect(big.status).toBe(413);
    expect(((await big.json()) as any).NeutronError.type).toBe("HTTPRequestEntityTooLarge");
  });

  it("echoes the request id it was given, or makes one", async () => {
    const given = "req-0b7a0c4e-4f6a-4b51-9d55-2b6e0d8f7a11";
    const r = await fetch(`${mesh.networkApiUrl}/v2.0/networks`, {
      headers: { "x-auth-token": "admin:admin", "x-openstack-request-id": given },
    });
    expect(r.headers.get("x-openstack-request-id")).toBe(given);
    const made = await fetch(`${mesh.networkApiUrl}/v2.0/networks`, {
      headers: { "x-auth-token": "admin:admin" },
    });
    expect(made.headers.get("x-openstack-request-id")).toMatch(/^req-[0-9a-f-]{36}$/);
  });
});
