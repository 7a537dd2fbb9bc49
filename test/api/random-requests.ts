// Random requests over every route of the compute API, with the input classes that broke it
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

/** A valid caller of the random requests: its token and its project's id. */
export interface RandomCaller {
  token: string;
  projectId: string;
}

/**
 * One random request over every route (and now and then a method the route does not take), as
 * one of `callers` or now and then with a token that is not valid.
 */
export function randomRequest(known: KnownIds, callers: RandomCaller[]): fc.Arbitrary<RandomRequest> {
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
  const caller = fc.oneof(
    { weight: 8, arbitrary: fc.constantFrom(...callers) },
    {
      weight: 1,
      arbitrary: fc
        .constantFrom("", "nocolon", "alice:p1", "a:b:c", "eyJhbGciOiJFUzI1NiJ9.e30.c2ln")
        .map((token) => ({ token, projectId: "p1" })),
    },
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
      caller,
      createBody(known),
      fc.boolean(),
    )
    .map(([[routeName, routeMethod, path], otherMethod, q, v, { token, projectId }, body, withProject]) => {
      const method = otherMethod ?? routeMethod;
      const withBody = method === "POST" || method === "PUT" || method === "PATCH";
      // Now and then the optional project id in the URL (2.18), the caller's own.
      const full =
        withProject && path.startsWith("/v2.1/") ? path.replace("/v2.1/", `/v2.1/${projectId}/`) : path;
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
  ];
}
