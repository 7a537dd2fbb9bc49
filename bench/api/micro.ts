// Diagnosis (not the benchmark): CPU per list answer of 100 servers in each stage, in-process.
// Conductor: row → record → protobuf → binary; api: binary → protobuf → JSON view → string.
//   node --import tsx bench/api/micro.ts [iterations=2000]
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { ListServersResponseSchema } from "@stratus/contracts/compute/v1";
import { createLogger, defaultRoles } from "@stratus/runtime";
import { buildRouter } from "../../services/api/src/app.js";
import type { ApiDeps } from "../../services/api/src/deps.js";
import type { RestRequest } from "../../services/api/src/http/router.js";
import { ImageCatalogue } from "../../services/api/src/images.js";
import { MAX_VERSION, parseVersionString } from "../../services/api/src/microversion.js";
import type { ServerRecord } from "../../services/conductor/src/compute/servers.js";
import { serverOut } from "../../services/conductor/src/rpc/conductor-service.js";

const N = Number(process.argv[2] ?? 2000);
const flavor = {
  id: "1",
  name: "m1.tiny",
  vcpus: 1,
  ramMb: 512,
  diskGb: 1,
  ephemeralGb: 0,
  swapMb: 0,
  rxtxFactor: 1,
  isPublic: true,
  extraSpecs: {},
};
const records: ServerRecord[] = Array.from({ length: 100 }, (_, i) => ({
  id: crypto.randomUUID(),
  name: `fill-${i}`,
  projectId: "bench",
  userId: "bench",
  flavorId: "1",
  flavor,
  imageRef: "a9e6c1b4-5f0d-4c36-8a57-2f4f6b1c0c01",
  vmState: "active",
  taskState: "",
  powerState: 1,
  host: `bench-${i % 200}`,
  node: `bench-${i % 200}`,
  addresses: [],
  metadata: {},
  reservationId: "r-12345678",
  launchIndex: i,
  keyName: "",
  availabilityZone: "",
  userData: "",
  hostname: `fill-${i}`,
  description: "",
  createdAt: new Date(),
  updatedAt: new Date(),
  launchedAt: new Date(),
  terminatedAt: null,
  deleted: false,
}));

// CPU time of this process (user + system), less disturbed than wall time on a shared machine.
const cpu = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};

function time(label: string, fn: () => unknown) {
  for (let i = 0; i < 200; i++) fn();
  const t = cpu();
  for (let i = 0; i < N; i++) fn();
  console.log(`${label}: ${(((cpu() - t) / N) * 1000).toFixed(0)} µs`);
}

time("conductor serverOut ×100", () => records.map(serverOut));
time("conductor create", () => create(ListServersResponseSchema, { servers: records.map(serverOut) }));
const msg = create(ListServersResponseSchema, { servers: records.map(serverOut) });
time("conductor toBinary", () => toBinary(ListServersResponseSchema, msg));
time("conductor create+toBinary", () =>
  toBinary(ListServersResponseSchema, create(ListServersResponseSchema, { servers: records.map(serverOut) })),
);
const wire = toBinary(
  ListServersResponseSchema,
  create(ListServersResponseSchema, { servers: records.map(serverOut) }),
);
console.log(`wire: ${wire.length} bytes`);
time("api fromBinary", () => fromBinary(ListServersResponseSchema, wire));

const deps = {
  conductor: {
    listServers: async () => fromBinary(ListServersResponseSchema, wire),
    listComputeServices: async () => ({ services: [] }),
  },
  images: new ImageCatalogue([]),
  logger: createLogger("micro", "warn"),
} as unknown as ApiDeps;
const router = buildRouter(deps);
for (const [label, version, user] of [
  ["2.37 user", parseVersionString("2.37")!, "bench"],
  ["max admin", MAX_VERSION, "admin"],
] as const) {
  const match = router.match("GET", ["servers", "detail"], version);
  if (match.kind !== "found") throw new Error("no route");
  const req: RestRequest = {
    method: "GET",
    segments: ["servers", "detail"],
    params: {},
    query: new URLSearchParams("limit=100"),
    headers: {},
    version,
    body: undefined,
    caller: {
      requestId: "req-1",
      userId: user,
      projectId: "bench",
      roles: defaultRoles(user === "admin"),
      isAdmin: user === "admin",
    },
    baseUrl: "http://127.0.0.1:8774/v2.1",
    hostUrl: "http://127.0.0.1:8774",
  };
  // Async handler: time it with awaits.
  for (let i = 0; i < 200; i++) await match.handler(req);
  let t = cpu();
  for (let i = 0; i < N; i++) await match.handler(req);
  console.log(`api handler (${label}, incl. fromBinary): ${(((cpu() - t) / N) * 1000).toFixed(0)} µs`);
  const res = await match.handler(req);
  t = cpu();
  let len = 0;
  for (let i = 0; i < N; i++) len = JSON.stringify(res.body).length;
  console.log(`api JSON.stringify (${label}): ${(((cpu() - t) / N) * 1000).toFixed(0)} µs, ${len} bytes`);
}
