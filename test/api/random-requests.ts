// Random requests over every route of the compute API (the audit's too), with the input classes that broke it
// before: bodies nested thousands deep, NUL and other control characters, unpaired surrogates,
// integers past what the wire carries, long strings, malformed ids in paths, queries and bodies.
// Shared by the property test (test/api/api.test.ts) and the bench-style run (bench/fuzz).
import fc from "fast-check";

export interface RandomRequest {
  /** The route it was made from ("GET /v2.1/servers/:server"); its method may differ. */
  route: string;
  method: string;
  /** Path and query, already percent-encoded. */
  path: string;
  headers: Record<string, string>;
  body?: string;
}

/** What the requests may name that exists: an image, servers, networks. */
export interface KnownIds {
  image: string;
  /** Read as requests are made: ids added later are named too. */
  serverIds: string[];
  networkIds: string[];
}

const NIL_UUID = "00000000-0000-4000-8000-000000000000";

/** Text of every class: ordinary, control characters, NUL, unpaired surrogates, long, numeric. */
export const strangeText: fc.Arbitrary<string> = fc.oneof(
  fc.string({ maxLength: 20 }),
  fc.string({ unit: "binary", maxLength: 20 }),
  fc.string({ unit: fc.integer({ min: 0, max: 0x1f }).map((c) => String.fromCharCode(c)), maxLength: 5 }),
  fc.constantFrom(
    "\u0000",
    "a\u0000b",
    "\ud800",
    "x\udc00y",
    "\ud83d",
    "\u007f",
    "x".repeat(256),
    "x".repeat(70_000),
    "2147483648",
    "99999999999999999999",
    "-1",
    "0",
    "1e309",
    NIL_UUID,
    "ZZZZZZZZ-ZZZZ-ZZZZ-ZZZZ-ZZZZZZZZZZZZ",
    "%",
    "..",
    "true",
    "maybe",
  ),
);

/** Numbers past every bound: int32 and int64 edges, unsafe integers, fractions, negatives. */
export const strangeNumber: fc.Arbitrary<number> = fc.oneof(
  fc.integer({ min: -2, max: 5 }),
  fc.constantFrom(2 ** 31 - 1, 2 ** 31, 2 ** 32, 2 ** 53 + 2, 2 ** 63, 1e308, -(2 ** 31) - 1, 0.5, -0),
);

/** A JSON value made of the strange parts, nested a little. */
const strangeJson: fc.Arbitrary<unknown> = fc.letrec((tie) => ({
  value: fc.oneof(
    { depthSize: "small" },
    strangeText,
    strangeNumber,
    fc.boolean(),
    fc.constant(null),
    fc.array(tie("value"), { maxLength: 3 }),
    fc.dictionary(strangeText, tie("value"), { maxKeys: 3 }),
  ),
})).value;

/** JSON text no serializer of ours writes: deep nesting, surrogate and NUL escapes, big numbers. */
const rawJson: fc.Arbitrary<string> = fc.oneof(
  fc.constantFrom(31, 32, 33, 100, 5000).map((n) => `{"server":${"[".repeat(n)}${"]".repeat(n)}}`),
  fc.constantFrom(5000).map((n) => `${'{"a":'.repeat(n)}1${"}".repeat(n)}`),
  fc.constantFrom(
    '{"server":{"name":"\\ud800","imageRef":"x","flavorRef":"1"}}',
    '{"server":{"name":"a\\u0000","flavorRef":"1","networks":"none"}}',
    '{"server":{"name":"n","flavorRef":"\\u0000","networks":"none"}}',
    '{"server":{"name":"n","flavorRef":"1","min_count":1e999,"networks":"none"}}',
    '{"server":{"name":"n","flavorRef":"1","max_count":123456789012345678901234567890,"networks":"none"}}',
    "{not json",
    "",
    "\u00ff\u00fe",
  ),
);

/** A value in a path segment or a query: strange text, percent-encoded (unencodable parts as raw bytes). */
export function encodePart(s: string): string {
  let out = "";
  for (const ch of s) {
    const c = ch.codePointAt(0)!;
    // An unpaired surrogate has no UTF-8: send the bytes a careless encoder would (CESU-8).
    out += c >= 0xd800 && c <= 0xdfff ? "%ED%A0%80" : encodeURIComponent(ch);
  }
  return out;
}

const QUERY_KEYS = [
  "limit",
  "marker",
  "name",
  "status",
  "flavor",
  "image",
  "host",
  "changes-since",
  "all_tenants",
  "deleted",
  "reservation_id",
  "project_id",
  "tenant_id",
  "is_public",
  "minRam",
  "minDisk",
  "binary",
  "id",
  "network_id",
  "device_id",
];

/** Strange text short enough for a URL (Node refuses request heads over 16 KiB). */
const urlText = strangeText.filter((s) => s.length < 4000);

const query: fc.Arbitrary<string> = fc
  .array(fc.tuple(fc.constantFrom(...QUERY_KEYS), urlText), { maxLength: 3 })
  .map((pairs) => (pairs.length ? `?${pairs.map(([k, v]) => `${k}=${encodePart(v)}`).join("&")}` : ""));

/** Every route of the compute API, `:x` standing for an id the generator fills in. */
const ROUTES: [string, string][] = [
  ["GET", "/"],
  ["GET", "/v2.1"],
  ["GET", "/v2"],
  ["POST", "/v2.1/servers"],
  ["GET", "/v2.1/servers"],
  ["GET", "/v2.1/servers/detail"],
  ["GET", "/v2.1/servers/:server"],
  ["DELETE", "/v2.1/servers/:server"],
  ["GET", "/v2.1/servers/:server/ips"],
  ["GET", "/v2.1/servers/:server/ips/:x"],
  ["GET", "/v2.1/servers/:server/os-instance-actions"],
  ["GET", "/v2.1/servers/:server/os-instance-actions/:x"],
  ["GET", "/v2.1/servers/:server/os-virtual-interfaces"],
  ["GET", "/v2.1/flavors"],
  ["GET", "/v2.1/flavors/detail"],
  ["GET", "/v2.1/flavors/:flavor"],
  ["GET", "/v2.1/flavors/:flavor/os-extra_specs"],
  ["GET", "/v2.1/flavors/:flavor/os-extra_specs/:x"],
  ["GET", "/v2.1/images"],
  ["GET", "/v2.1/images/detail"],
  ["GET", "/v2.1/images/:image"],
  ["GET", "/v2.1/limits"],
  ["GET", "/v2.1/os-services"],
  ["GET", "/v2.1/os-hypervisors"],
  ["GET", "/v2.1/os-hypervisors/detail"],
  ["GET", "/v2.1/os-hypervisors/statistics"],
  ["GET", "/v2.1/os-hypervisors/:x"],
  ["GET", "/v2.1/os-networks"],
  ["GET", "/v2.1/os-networks/:network"],
  ["GET", "/v2.1/os-tenant-networks"],
  ["GET", "/v2.1/os-tenant-networks/:network"],
  ["GET", "/v2.1/os-floating-ip-pools"],
  ["GET", "/v2.1/os-floating-ips"],
  ["GET", "/v2.1/v2.0/networks"],
  ["GET", "/v2.1/v2.0/networks/:network"],
  ["GET", "/v2.1/v2.0/ports"],
  ["GET", "/v2.1/v2.0/ports/:x"],
  ["GET", "/v2.1/os-stratus-audit"],
  ["POST", "/v2.1/os-stratus-audit"],
];

function idFor(kind: string, known: KnownIds): fc.Arbitrary<string> {
  const real: Record<string, string[]> = {
    server: known.serverIds,
    image: [known.image],
    flavor: ["1", "2"],
    network: known.networkIds,
  };
  const existing = real[kind] ?? [];
  // Read when a request is made: the caller may add the servers it created to the list.
  const some = fc.nat().map((i) => existing[i % existing.length] ?? NIL_UUID);
  return fc.oneof(some, fc.constant(NIL_UUID), urlText);
}

/**
 * A create body: a valid one with one field made strange (or none), plausible fields mixed with
 * strange ones, strange JSON under "server", or raw JSON text no serializer writes.
 */
function createBody(known: KnownIds): fc.Arbitrary<string> {
  const network = fc.record(
    {
      uuid: fc.oneof(fc.constantFrom(NIL_UUID, ...known.networkIds), strangeJson),
      port: fc.oneof(fc.constant(NIL_UUID), strangeJson),
      fixed_ip: fc.oneof(fc.constantFrom("10.1.1.5", "::1", "999.1.1.1"), strangeJson),
      tag: strangeText,
    },
    { requiredKeys: [] },
  );
  const strangeFields: Record<string, fc.Arbitrary<unknown>> = {
    name: strangeJson,
    imageRef: strangeJson,
    flavorRef: strangeJson,
    networks: fc.oneof(fc.constantFrom("auto", "bogus"), fc.array(network, { maxLength: 2 }), strangeJson),
    min_count: fc.oneof(strangeNumber, strangeText),
    max_count: fc.oneof(strangeNumber, strangeText),
    metadata: fc.oneof(fc.dictionary(strangeText, strangeText, { maxKeys: 3 }), strangeJson),
    user_data: fc.oneof(fc.base64String({ maxLength: 40 }), strangeJson),
    return_reservation_id: fc.oneof(fc.constantFrom(true, false, "True", "off", "maybe"), strangeJson),
    availability_zone: strangeJson,
    description: strangeJson,
    config_drive: strangeJson,
    adminPass: strangeJson,
    key_name: strangeJson,
    security_groups: strangeJson,
    "OS-DCF:diskConfig": strangeJson,
  };
  const valid: Record<string, unknown> = {
    name: "fuzz",
    imageRef: known.image,
    flavorRef: "1",
    networks: "none",
  };
  const oneStrange = fc
    .constantFrom(...Object.keys(strangeFields))
    .chain((k) => strangeFields[k]!.map((v) => ({ ...valid, [k]: v })));
  const mixed = fc.record(
    Object.fromEntries(
      Object.entries(strangeFields).map(([k, v]) => [k, k in valid ? fc.oneof(fc.constant(valid[k]), v) : v]),
    ),
    { requiredKeys: [] },
  );
  // Scheduler hints now and then (a strange one refuses the whole request).
  const withHints = (server: fc.Arbitrary<unknown>) =>
    fc
      .tuple(server, fc.option(fc.dictionary(strangeText, strangeJson, { maxKeys: 2 }), { freq: 3 }))
      .map(([srv, hints]) =>
        JSON.stringify(hints === null ? { server: srv } : { server: srv, "os:scheduler_hints": hints }),
      );
  return fc.oneof(
    { weight: 1, arbitrary: withHints(fc.constant(valid)) },
    { weight: 4, arbitrary: withHints(oneStrange) },
    { weight: 1, arbitrary: withHints(mixed) },
    { weight: 1, arbitrary: strangeJson.map((v) => JSON.stringify({ server: v })) },
    { weight: 1, arbitrary: rawJson },
  );
}

/** An audit body (POST /os-stratus-audit): a valid one, strange values under "audit" or "fix", raw JSON. */
function auditBody(): fc.Arbitrary<string> {
  return fc.oneof(
    fc.constantFrom('{"audit":{}}', '{"audit":{"fix":false}}'),
    strangeJson.map((v) => JSON.stringify({ audit: { fix: v } })),
    strangeJson.map((v) => JSON.stringify({ audit: v })),
    fc.dictionary(strangeText, strangeJson, { maxKeys: 3 }).map((d) => JSON.stringify({ audit: d })),
    fc.constantFrom(5000).map((n) => `{"audit":${'{"fix":'.repeat(n)}true${"}".repeat(n)}}`),
    rawJson,
  );
}

/**
 * One random request over every route (and now and then a method the route does not take), as
 * one of `tokens` (valid callers) or now and then an invalid one.
 */
export function randomRequest(known: KnownIds, tokens: string[]): fc.Arbitrary<RandomRequest> {
  // Creates are where input turns into state: a quarter of the requests.
  const create = ROUTES.find(([m, t]) => m === "POST" && t === "/v2.1/servers")!;
  const routes = fc.oneof(
    { weight: 1, arbitrary: fc.constant(create) },
    {
      weight: 3,
      arbitrary: fc.constantFrom(...ROUTES),
    },
  );
  const route = routes.chain(([method, template]) => {
    const parts = template
      .split("/")
      .map((seg) => (seg.startsWith(":") ? idFor(seg.slice(1), known).map(encodePart) : fc.constant(seg)));
    return fc.tuple(
      fc.constant(`${method} ${template}`),
      fc.constant(method),
      fc.tuple(...parts).map((segs) => segs.join("/")),
    );
  });
  const version = fc.oneof(
    { weight: 3, arbitrary: fc.constantFrom("2.1", "2.35", "2.36") },
    { weight: 6, arbitrary: fc.constantFrom("2.37", "2.44", "latest") },
    { weight: 1, arbitrary: fc.constantFrom("x", "3.0", "2.9999") },
  );
  // Mostly a valid caller, so that requests reach past authentication.
  const token = fc.oneof(
    { weight: 8, arbitrary: fc.constantFrom(...tokens) },
    { weight: 1, arbitrary: fc.constantFrom("", "nocolon", "a:b:c") },
  );
  return fc
    .tuple(
      route,
      fc.oneof(
        { weight: 9, arbitrary: fc.constant(undefined) },
        fc.constantFrom("PUT", "PATCH", "DELETE", "POST"),
      ),
      query,
      version,
      token,
      createBody(known),
      auditBody(),
      fc.boolean(),
    )
    .map(([[routeName, routeMethod, path], otherMethod, q, v, token, create, auditText, withProject]) => {
      const body = routeName.includes("/os-stratus-audit") ? auditText : create;
      const method = otherMethod ?? routeMethod;
      const withBody = method === "POST" || method === "PUT" || method === "PATCH";
      // Now and then the optional project id in the URL (2.18), the caller's own.
      const project = token.split(":")[1] ?? "";
      const full =
        withProject && path.startsWith("/v2.1/") ? path.replace("/v2.1/", `/v2.1/${project}/`) : path;
      return {
        route: routeName,
        method,
        path: `${full}${method === "GET" ? q : ""}`,
        headers: {
          "content-type": "application/json",
          "openstack-api-version": `compute ${v}`,
          "x-auth-token": token,
        },
        ...(withBody ? { body } : {}),
      };
    });
}

/** The requests that broke the compute API before (issue 23): each is tried on every run. */
export function knownBreakers(known: KnownIds, token: string): RandomRequest[] {
  const server = known.serverIds[0] ?? NIL_UUID;
  const headers = {
    "content-type": "application/json",
    "openstack-api-version": "compute 2.37",
    "x-auth-token": token,
  };
  const create = (fields: Record<string, unknown>) =>
    JSON.stringify({
      server: { name: "b", imageRef: known.image, flavorRef: "1", networks: "none", ...fields },
    });
  const get = (path: string, route: string): RandomRequest => ({ route, method: "GET", path, headers });
  const post = (body: string): RandomRequest => ({
    route: "POST /v2.1/servers",
    method: "POST",
    path: "/v2.1/servers",
    headers,
    body,
  });
  return [
    post(`{"server":${"[".repeat(5000)}${"]".repeat(5000)}}`),
    post(create({ flavorRef: "\u0000" })),
    post(create({ flavorRef: `\u0000${"x".repeat(40)}` })),
    post(create({ max_count: 2 ** 31 })),
    post(create({ min_count: 2 ** 31, max_count: 2 ** 31 })),
    post(create({ return_reservation_id: "maybe" })),
    post(create({ name: "\ud800" })),
    post(create({ metadata: { k: "\u0000" } })),
    post(create({ networks: [{ uuid: "\u0000" }] })),
    get("/v2.1/flavors/%00", "GET /v2.1/flavors/:flavor"),
    get("/v2.1/servers?flavor=%00", "GET /v2.1/servers"),
    get("/v2.1/servers/detail?image=%00&name=%00&host=%00", "GET /v2.1/servers/detail"),
    get(
      `/v2.1/servers/${server}/os-instance-actions/%00`,
      "GET /v2.1/servers/:server/os-instance-actions/:x",
    ),
    get("/v2.1/servers/%00", "GET /v2.1/servers/:server"),
    get("/v2.1/v2.0/networks/%00", "GET /v2.1/v2.0/networks/:network"),
    get("/v2.1/v2.0/networks?id=%00&name=%00", "GET /v2.1/v2.0/networks"),
    get("/v2.1/v2.0/ports?network_id=%00&device_id=%00", "GET /v2.1/v2.0/ports"),
    get("/v2.1/limits?tenant_id=%00", "GET /v2.1/limits"),
    get("/v2.1/os-services?host=%00", "GET /v2.1/os-services"),
    get("/v2.1/os-stratus-audit?fix=%00", "GET /v2.1/os-stratus-audit"),
    {
      route: "POST /v2.1/os-stratus-audit",
      method: "POST",
      path: "/v2.1/os-stratus-audit",
      headers,
      body: `{"audit":{"fix":"\u0000${"[".repeat(5000)}"}}`,
    },
  ];
}

/** What Networking API requests may name that exists (read as requests are made). */
export interface NetworkingIds {
  network: string[];
  segment: string[];
  subnet: string[];
  subnetpool: string[];
  /** Resources the other files of the Networking API register (ports, routers): by kind. */
  [kind: string]: string[];
}

const netAttrs = (): Record<string, fc.Arbitrary<unknown>> => ({
  name: strangeJson,
  description: strangeJson,
  admin_state_up: fc.oneof(fc.boolean(), strangeJson),
  shared: fc.oneof(fc.boolean(), strangeJson),
  "router:external": fc.oneof(fc.boolean(), strangeJson),
  is_default: fc.oneof(fc.boolean(), strangeJson),
  mtu: fc.oneof(strangeNumber, strangeJson),
  project_id: fc.oneof(fc.constantFrom("p1", "p2"), strangeJson),
  "provider:network_type": fc.oneof(fc.constantFrom("vlan", "flat", "vxlan", "geneve", "gre"), strangeJson),
  "provider:physical_network": fc.oneof(fc.constantFrom("physnet-rack1", "fuzz"), strangeJson),
  "provider:segmentation_id": fc.oneof(strangeNumber, strangeJson),
  segments: fc.oneof(
    fc.array(
      fc.record(
        {
          "provider:network_type": fc.oneof(fc.constantFrom("vlan", "flat"), strangeJson),
          "provider:physical_network": strangeJson,
          "provider:segmentation_id": fc.oneof(strangeNumber, strangeJson),
        },
        { requiredKeys: [] },
      ),
      { maxLength: 3 },
    ),
    strangeJson,
  ),
});

const idOrStrange = (ids: () => string[]) =>
  fc.oneof(
    fc.nat().map((i) => ids()[i % Math.max(ids().length, 1)] ?? NIL_UUID),
    fc.constant(NIL_UUID),
    strangeJson,
  );

function networkingAttrs(known: NetworkingIds): Record<string, Record<string, fc.Arbitrary<unknown>>> {
  const cidr = fc.oneof(
    fc.constantFrom(
      "10.250.0.0/24",
      "10.251.0.0/8",
      "0.0.0.0/0",
      "2001:db8::/64",
      "10.1.1.1/24",
      "300.1.1.0/24",
    ),
    strangeJson,
  );
  return {
    network: netAttrs(),
    segment: {
      network_id: idOrStrange(() => known.network),
      network_type: fc.oneof(fc.constantFrom("vlan", "flat", "vxlan"), strangeJson),
      physical_network: fc.oneof(fc.constantFrom("physnet-rack1", "fuzz"), strangeJson),
      segmentation_id: fc.oneof(strangeNumber, strangeJson),
      name: strangeJson,
      description: strangeJson,
    },
    subnet: {
      network_id: idOrStrange(() => known.network),
      segment_id: idOrStrange(() => known.segment),
      ip_version: fc.oneof(fc.constantFrom(4, 6), strangeJson),
      cidr,
      subnetpool_id: idOrStrange(() => known.subnetpool),
      prefixlen: fc.oneof(strangeNumber, strangeJson),
      use_default_subnetpool: fc.oneof(fc.boolean(), strangeJson),
      gateway_ip: fc.oneof(fc.constantFrom("10.250.0.1", "10.9.9.9", "::1"), strangeJson),
      allocation_pools: fc.oneof(
        fc.array(fc.record({ start: strangeJson, end: strangeJson }, { requiredKeys: [] }), { maxLength: 2 }),
        strangeJson,
      ),
      enable_dhcp: fc.oneof(fc.boolean(), strangeJson),
      dns_nameservers: fc.oneof(fc.array(strangeText, { maxLength: 2 }), strangeJson),
      host_routes: fc.oneof(
        fc.array(fc.record({ destination: strangeJson, nexthop: strangeJson }, { requiredKeys: [] }), {
          maxLength: 2,
        }),
        strangeJson,
      ),
      name: strangeJson,
      ipv6_ra_mode: strangeJson,
    },
    port: {
      network_id: idOrStrange(() => known.network),
      name: strangeJson,
      admin_state_up: fc.oneof(fc.boolean(), strangeJson),
      mac_address: fc.oneof(fc.constantFrom("fa:16:3e:00:00:01", "01:00:00:00:00:01", "zz"), strangeJson),
      fixed_ips: fc.oneof(
        fc.array(
          fc.record(
            {
              subnet_id: idOrStrange(() => known.subnet),
              ip_address: fc.oneof(
                fc.constantFrom("10.240.0.20", "10.9.9.9", "::1", "300.1.1.1"),
                strangeJson,
              ),
            },
            { requiredKeys: [] },
          ),
          { maxLength: 2 },
        ),
        strangeJson,
      ),
      device_id: strangeJson,
      device_owner: fc.oneof(fc.constantFrom("compute:nova", "network:router_interface"), strangeJson),
      "binding:host_id": fc.oneof(fc.constantFrom("rack1-1", "nowhere"), strangeJson),
      "binding:profile": fc.oneof(fc.dictionary(strangeText, strangeJson, { maxKeys: 2 }), strangeJson),
      "binding:vnic_type": fc.oneof(fc.constantFrom("normal", "direct", "warp"), strangeJson),
      ip_allocation: strangeJson,
      project_id: fc.oneof(fc.constantFrom("p1", "p2"), strangeJson),
    },
    router: {
      name: strangeJson,
      admin_state_up: fc.oneof(fc.boolean(), strangeJson),
      external_gateway_info: fc.oneof(
        fc.record(
          {
            network_id: idOrStrange(() => known.network),
            enable_snat: fc.oneof(fc.boolean(), strangeJson),
            external_fixed_ips: fc.oneof(
              fc.array(fc.record({ subnet_id: strangeJson, ip_address: strangeJson }, { requiredKeys: [] }), {
                maxLength: 2,
              }),
              strangeJson,
            ),
          },
          { requiredKeys: [] },
        ),
        strangeJson,
      ),
      distributed: strangeJson,
      project_id: fc.oneof(fc.constantFrom("p1", "p2"), strangeJson),
    },
    subnetpool: {
      name: strangeJson,
      prefixes: fc.oneof(fc.array(cidr, { maxLength: 2 }), strangeJson),
      default_prefixlen: fc.oneof(strangeNumber, strangeJson),
      min_prefixlen: fc.oneof(strangeNumber, strangeJson),
      max_prefixlen: fc.oneof(strangeNumber, strangeJson),
      is_default: fc.oneof(fc.boolean(), strangeJson),
      shared: fc.oneof(fc.boolean(), strangeJson),
      address_scope_id: strangeJson,
    },
  };
}

/** The Networking API's resources the generator makes requests for (with their attributes above). */
const NETWORKING_RESOURCES: [singular: string, collection: string][] = [
  ["network", "networks"],
  ["segment", "segments"],
  ["subnet", "subnets"],
  ["subnetpool", "subnetpools"],
  ["port", "ports"],
  ["router", "routers"],
];

/** The query parameters of Networking API lists: filters, fields, sorting and paging. */
const NETWORKING_QUERY_KEYS = [
  "fields",
  "sort_key",
  "sort_dir",
  "limit",
  "marker",
  "page_reverse",
  "name",
  "id",
  "shared",
  "router:external",
  "provider:segmentation_id",
  "network_id",
  "segment_id",
  "cidr",
  "gateway_ip",
  "ip_version",
  "is_default",
  "project_id",
  "changed_since",
  "colour",
  "device_id",
  "device_owner",
  "mac_address",
  "fixed_ips",
  "binding:host_id",
  "ip_allocation",
  "status",
];

/**
 * One random Networking API request: a resource's list, show, create, update or delete (now and
 * then with another method, an unknown path or a version document), with strange ids, queries
 * and bodies, as one of `tokens` or now and then an invalid caller.
 */
export function randomNetworkingRequest(known: NetworkingIds, tokens: string[]): fc.Arbitrary<RandomRequest> {
  const attrs = networkingAttrs(known);
  const body = (singular: string) => {
    const fields = attrs[singular]!;
    const some = fc.record(fields, { requiredKeys: [] });
    return fc.oneof(
      { weight: 6, arbitrary: some.map((b) => JSON.stringify({ [singular]: b })) },
      { weight: 1, arbitrary: strangeJson.map((v) => JSON.stringify({ [singular]: v })) },
      { weight: 1, arbitrary: strangeJson.map((v) => JSON.stringify(v)) },
      { weight: 1, arbitrary: rawJson },
    );
  };
  const q = fc
    .array(fc.tuple(fc.constantFrom(...NETWORKING_QUERY_KEYS), urlText), { maxLength: 3 })
    .map((pairs) =>
      pairs.length ? `?${pairs.map(([k, v]) => `${encodePart(k)}=${encodePart(v)}`).join("&")}` : "",
    );
  const id = (singular: string) =>
    fc
      .oneof(
        fc.nat().map((i) => known[singular]![i % Math.max(known[singular]!.length, 1)] ?? NIL_UUID),
        fc.constant(NIL_UUID),
        urlText,
      )
      .map(encodePart);
  const resourceRequest = fc.constantFrom(...NETWORKING_RESOURCES).chain(([singular, collection]) =>
    fc.oneof(
      q.map((query) => ({
        route: `GET /v2.0/${collection}`,
        method: "GET",
        path: `/v2.0/${collection}${query}`,
      })),
      fc.tuple(id(singular), q).map(([i, query]) => ({
        route: `GET /v2.0/${collection}/:id`,
        method: "GET",
        path: `/v2.0/${collection}/${i}${query}`,
      })),
      body(singular).map((b) => ({
        route: `POST /v2.0/${collection}`,
        method: "POST",
        path: `/v2.0/${collection}`,
        body: b,
      })),
      fc.tuple(id(singular), body(singular)).map(([i, b]) => ({
        route: `PUT /v2.0/${collection}/:id`,
        method: "PUT",
        path: `/v2.0/${collection}/${i}`,
        body: b,
      })),
      id(singular).map((i) => ({
        route: `DELETE /v2.0/${collection}/:id`,
        method: "DELETE",
        path: `/v2.0/${collection}/${i}`,
      })),
      fc.tuple(fc.constantFrom("PATCH", "PUT", "DELETE"), body(singular)).map(([method, b]) => ({
        route: `${method} /v2.0/${collection}`,
        method,
        path: `/v2.0/${collection}`,
        body: b,
      })),
    ),
  );
  const other = fc.oneof(
    fc.constantFrom("/", "/v2.0", "/v2.0/extensions", "/v2.0/extensions/segment").map((path) => ({
      route: `GET ${path}`,
      method: "GET",
      path,
    })),
    urlText.map((s) => ({ route: "GET /v2.0/:x", method: "GET", path: `/v2.0/${encodePart(s)}` })),
  );
  // Router interfaces, the auto-allocated topology and quotas: their own paths.
  const projectPart = fc.oneof(fc.constantFrom("p1", "p2", "admin"), urlText).map(encodePart);
  const interfaceBody = fc
    .oneof(
      fc.record(
        { subnet_id: idOrStrange(() => known.subnet), port_id: idOrStrange(() => known.port ?? []) },
        { requiredKeys: [] },
      ),
      strangeJson,
    )
    .map((b) => JSON.stringify(b));
  const quotaBody = fc
    .oneof(
      fc
        .record(
          {
            network: fc.oneof(strangeNumber, strangeJson),
            port: fc.oneof(strangeNumber, strangeJson),
            router: fc.oneof(strangeNumber, strangeJson),
            floatingip: strangeNumber,
            force: fc.oneof(fc.boolean(), strangeJson),
          },
          { requiredKeys: [] },
        )
        .map((q) => ({ quota: q })),
      strangeJson,
    )
    .map((b) => JSON.stringify(b));
  const actions = fc.oneof(
    fc
      .tuple(id("router"), fc.constantFrom("add_router_interface", "remove_router_interface"), interfaceBody)
      .map(([i, action, b]) => ({
        route: `PUT /v2.0/routers/:id/${action}`,
        method: "PUT",
        path: `/v2.0/routers/${i}/${action}`,
        body: b,
      })),
    fc
      .tuple(
        fc.constantFrom("GET", "DELETE"),
        projectPart,
        fc.constantFrom("", "?fields=dry-run", "?fields=id", "?fields=dry-run&fields=%00"),
      )
      .map(([method, p, query]) => ({
        route: `${method} /v2.0/auto-allocated-topology/:project`,
        method,
        path: `/v2.0/auto-allocated-topology/${p}${method === "GET" ? query : ""}`,
      })),
    fc.tuple(fc.constantFrom("", "/default", "/details"), projectPart).map(([tail, p]) => ({
      route: `GET /v2.0/quotas/:project${tail}`,
      method: "GET",
      path: `/v2.0/quotas/${p}${tail}`,
    })),
    fc.constant({ route: "GET /v2.0/quotas", method: "GET", path: "/v2.0/quotas" }),
    fc.tuple(projectPart, quotaBody).map(([p, b]) => ({
      route: "PUT /v2.0/quotas/:project",
      method: "PUT",
      path: `/v2.0/quotas/${p}`,
      body: b,
    })),
    projectPart.map((p) => ({
      route: "DELETE /v2.0/quotas/:project",
      method: "DELETE",
      path: `/v2.0/quotas/${p}`,
    })),
  );
  const token = fc.oneof(
    { weight: 8, arbitrary: fc.constantFrom(...tokens) },
    { weight: 1, arbitrary: fc.constantFrom("", "nocolon", "a:b:c") },
  );
  return fc
    .tuple(
      fc.oneof(
        { weight: 9, arbitrary: resourceRequest },
        { weight: 3, arbitrary: actions },
        { weight: 1, arbitrary: other },
      ),
      token,
    )
    .map(([r, t]) => ({
      route: r.route,
      method: r.method,
      path: r.path,
      headers: { "content-type": "application/json", "x-auth-token": t },
      ...("body" in r && r.body !== undefined ? { body: r.body } : {}),
    }));
}

/** Networking API requests with the input classes that broke the compute edge before. */
export function knownNetworkingBreakers(token: string): RandomRequest[] {
  const headers = { "content-type": "application/json", "x-auth-token": token };
  const post = (collection: string, body: string): RandomRequest => ({
    route: `POST /v2.0/${collection}`,
    method: "POST",
    path: `/v2.0/${collection}`,
    headers,
    body,
  });
  const get = (path: string): RandomRequest => ({ route: `GET ${path}`, method: "GET", path, headers });
  return [
    post("networks", `{"network":${"[".repeat(5000)}${"]".repeat(5000)}}`),
    post("networks", JSON.stringify({ network: { name: "\ud800" } })),
    post("networks", JSON.stringify({ network: { "provider:segmentation_id": 2 ** 31 } })),
    post("networks", JSON.stringify({ network: { mtu: 2 ** 53 + 2 } })),
    post("networks", JSON.stringify({ network: { segments: [{ "provider:network_type": "\u0000" }] } })),
    post("subnets", JSON.stringify({ subnet: { network_id: NIL_UUID, ip_version: 4, cidr: "\u0000" } })),
    post("subnets", JSON.stringify({ subnet: { network_id: "\u0000", ip_version: 4 } })),
    post("subnetpools", JSON.stringify({ subnetpool: { name: "x", prefixes: ["1e309"] } })),
    get("/v2.0/networks/%00"),
    get("/v2.0/networks?name=%00&id=%00"),
    get("/v2.0/networks?limit=99999999999999999999"),
    get("/v2.0/subnets?gateway_ip=%00&cidr=%00"),
    get("/v2.0/segments?segmentation_id=99999999999999999999"),
    get("/v2.0/networks?marker=%00&limit=1"),
    get("/v2.0/networks?sort_key=%00"),
    post("ports", JSON.stringify({ port: { network_id: NIL_UUID, fixed_ips: [{ ip_address: "\u0000" }] } })),
    post("ports", JSON.stringify({ port: { network_id: NIL_UUID, "binding:profile": { a: { b: 1 } } } })),
    post("ports", JSON.stringify({ port: { network_id: NIL_UUID, mac_address: "\ud800" } })),
    post("routers", JSON.stringify({ router: { external_gateway_info: { network_id: "\u0000" } } })),
    post("routers", JSON.stringify({ router: { external_gateway_info: [] } })),
    get("/v2.0/ports?fixed_ips=ip_address%3D%00&device_id=%00"),
    get("/v2.0/ports?fixed_ips=nonsense"),
    get("/v2.0/auto-allocated-topology/%00?fields=dry-run"),
    get("/v2.0/quotas/%00/details"),
    {
      route: "PUT /v2.0/quotas/:project",
      method: "PUT",
      path: "/v2.0/quotas/p1",
      headers,
      body: JSON.stringify({ quota: { port: 2 ** 31 } }),
    },
    {
      route: "PUT /v2.0/routers/:id/add_router_interface",
      method: "PUT",
      path: `/v2.0/routers/${NIL_UUID}/add_router_interface`,
      headers,
      body: JSON.stringify({ subnet_id: "\u0000" }),
    },
  ];
}
