// RPCs are a public surface too: every method of every service of the mesh, called with strange
// values in each of its request's fields (ids that are no uuid, a uuid nobody has, NUL, unpaired
// surrogates, long strings, extreme numbers), answers a client error or success — never an
// internal error (a PostgreSQL refusal, an encoding failure).
import { randomUUID } from "node:crypto";
import { create, type DescField, type DescMessage, type DescService } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { ConductorService } from "@stratus/contracts/compute/v1";
import { ComputeAgentService } from "@stratus/contracts/computeagent/v1";
import { NetworkService } from "@stratus/contracts/network/v1";
import { PlacementService } from "@stratus/contracts/scheduler/v1/placement";
import { SchedulerService } from "@stratus/contracts/scheduler/v1/scheduler";
import { type Mesh, type ServiceName, startMesh } from "@stratus/runtime/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const STRINGS = [
  "x",
  "",
  "00000000-0000-4000-8000-000000000000",
  "ZZZZZZZZ-ZZZZ-ZZZZ-ZZZZ-ZZZZZZZZZZZZ",
  "a".repeat(300),
  "nul\u0000inside",
  "lone\ud800",
  "1.2.3.999/99",
];
const NUMBERS = [-1, 2 ** 31 - 1];
const BIGINTS = [-1n, 2n ** 63n - 1n];

const SOME_UUID = "00000000-0000-4000-8000-000000000000";

/** Every string field a well-formed uuid: a request that passes the first checks. */
function plausible(input: DescMessage): Record<string, unknown> {
  const init: Record<string, unknown> = {};
  for (const f of input.fields) {
    if (f.oneof) continue;
    if (f.fieldKind === "scalar" && f.scalar === 9) init[f.localName] = SOME_UUID;
    else if (f.fieldKind === "list" && f.listKind === "scalar" && f.scalar === 9)
      init[f.localName] = [SOME_UUID];
  }
  return init;
}

/**
 * Every request: one field set to each strange value, the others left empty, then the others
 * plausible (so that the strange one reaches past the first checks).
 */
function* strangeRequests(input: DescMessage): Generator<[string, Record<string, unknown>]> {
  yield ["(empty)", {}];
  yield ["(plausible)", plausible(input)];
  for (const field of input.fields) {
    for (const v of valuesFor(field)) {
      const one = field.oneof
        ? { [field.oneof.localName]: { case: field.localName, value: v } }
        : { [field.localName]: v };
      const what = `${field.name}=${JSON.stringify(String(v)).slice(0, 40)}`;
      yield [what, one];
      yield [`${what} (others plausible)`, { ...plausible(input), ...one }];
    }
  }
}

function valuesFor(field: DescField): unknown[] {
  switch (field.fieldKind) {
    case "scalar":
      return scalarValues(field.scalar);
    case "enum":
      return [99];
    case "list":
      if (field.listKind === "scalar") return scalarValues(field.scalar).map((v) => [v]);
      if (field.listKind === "message") return messageValues(field.message).map((m) => [m]);
      return [[99]];
    case "map":
      if (field.mapKind === "scalar") return scalarValues(field.scalar).map((v) => ({ k: v }));
      return [{ x: {} }];
    case "message":
      return messageValues(field.message);
  }
}

function scalarValues(scalar: number): unknown[] {
  if (scalar === 9) return STRINGS; // string
  if (scalar === 8) return [true]; // bool
  if (scalar === 12) return [new Uint8Array([0, 1])]; // bytes
  if ([3, 4, 6, 16, 18].includes(scalar)) return BIGINTS; // 64-bit
  if (scalar === 1 || scalar === 2) return [-1, 1e300]; // double, float
  return NUMBERS.filter((n) => n >= 0 || [5, 15, 17].includes(scalar)); // 32-bit
}

/** A nested message: empty, then each of its scalar fields strange in turn, the others plausible. */
function messageValues(desc: DescMessage): unknown[] {
  const out: unknown[] = [create(desc, {})];
  for (const f of desc.fields) {
    if (f.fieldKind !== "scalar" || f.oneof) continue;
    for (const v of scalarValues(f.scalar)) {
      out.push(create(desc, { ...plausible(desc), [f.localName]: v } as never));
    }
  }
  return out;
}

const SERVICES: [ServiceName, DescService][] = [
  ["conductor", ConductorService],
  ["network-adapter", NetworkService],
  ["scheduler", PlacementService],
  ["scheduler", SchedulerService],
  ["compute-agent", ComputeAgentService],
];

let mesh: Mesh;
beforeAll(async () => {
  mesh = await startMesh({ services: ["scheduler", "network-adapter", "conductor", "compute-agent"] });
});
afterAll(async () => {
  await mesh?.close();
});

describe("every RPC of the mesh", () => {
  it.each(SERVICES.map(([name, service]) => [service.typeName, name, service] as const))(
    "%s answers strange input with a client error, never an internal one",
    async (_, name, service) => {
      // Connect JSON: the one protocol that can carry NUL and unpaired surrogates as they are.
      const transport = createConnectTransport({ baseUrl: mesh.url(name), httpVersion: "2" });
      const client = createClient(service, transport) as unknown as Record<
        string,
        (req: unknown, opts: unknown) => Promise<unknown>
      >;
      const internal: string[] = [];
      for (const method of service.methods) {
        if (method.methodKind !== "unary") continue;
        for (const [what, init] of strangeRequests(method.input)) {
          try {
            await client[method.localName]!(init, {
              headers: {
                "x-openstack-request-id": `req-${randomUUID()}`,
                "x-stratus-user-id": "admin",
                "x-stratus-project-id": "admin",
                "x-stratus-admin": "1",
              },
              timeoutMs: 20_000,
            });
          } catch (err) {
            const ce = ConnectError.from(err);
            if (ce.code === Code.Internal || ce.code === Code.Unknown) {
              internal.push(`${method.name}(${what}): ${ce.rawMessage}`);
            }
          }
        }
      }
      expect(internal).toEqual([]);
    },
    300_000,
  );
});
