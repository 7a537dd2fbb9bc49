// The pipeline's input stage: text no store can keep, strings and lists past their bounds are
// refused before the handler runs, on the fast path and on every protocol connect-node answers,
// nested fields and map entries included; what is within bounds reaches the handler unchanged.
import { create } from "@bufbuild/protobuf";
import { Code, createClient, type Transport } from "@connectrpc/connect";
import {
  createConnectTransport,
  createGrpcTransport,
  createGrpcWebTransport,
} from "@connectrpc/connect-node";
import {
  ListResourceProvidersRequestSchema,
  PlacementService,
} from "@stratus/contracts/scheduler/v1/placement";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { StratusError } from "../errors.js";
import { fastTestClient, refusal, startTestRpcServer } from "../testing/rpc.js";
import { bindService } from "./binding.js";
import { checkMessage } from "./input-validation.js";
import type { RpcServer } from "./server.js";

const handled: string[] = [];
const placement = bindService(PlacementService, {
  listResourceProviders: (req) => {
    handled.push(req.name);
    return { providers: [] };
  },
});

let server: RpcServer;
beforeAll(async () => {
  server = await startTestRpcServer([placement]);
});
afterAll(() => server.close());

const transports: [string, () => Transport][] = [
  ["connect-node, Connect JSON", () => createConnectTransport({ baseUrl: server.url, httpVersion: "2" })],
  ["connect-node, gRPC", () => createGrpcTransport({ baseUrl: server.url })],
  ["connect-node, gRPC-Web", () => createGrpcWebTransport({ baseUrl: server.url, httpVersion: "2" })],
];

describe("the RPC input stage", () => {
  it("refuses a NUL on the fast path before the handler, naming the field", async () => {
    const client = fastTestClient(PlacementService, server.url);
    const before = handled.length;
    const err = await refusal(client.listResourceProviders({ name: "rack\u00001" }));
    expect(err.code).toBe(Code.InvalidArgument);
    expect(err.rawMessage).toContain("field name must not contain NUL characters");
    expect(err.metadata.get("x-stratus-error-kind")).toBe("invalid_input");
    expect(handled.length).toBe(before);
    expect((await client.listResourceProviders({ name: "rack1" })).providers).toEqual([]);
    expect(handled.at(-1)).toBe("rack1");
  });

  it.each(transports)("refuses NUL, long strings and long lists on %s", async (_, make) => {
    const client = createClient(PlacementService, make());
    const before = handled.length;
    const nested = { memberOf: [{ aggregateUuids: ["ok", "bad\u0000"] }] };
    expect((await refusal(client.listResourceProviders(nested))).rawMessage).toContain(
      "field member_of[0].aggregate_uuids[1] must not contain NUL characters",
    );
    expect((await refusal(client.listResourceProviders({ name: "x".repeat(65_537) }))).rawMessage).toContain(
      "is longer than 65536 characters",
    );
    const many = { requiredTraits: Array.from({ length: 10_001 }, (_, i) => `T${i}`) };
    expect((await refusal(client.listResourceProviders(many))).rawMessage).toContain(
      "field required_traits has more than 10000 entries",
    );
    const bigMap = { resources: Object.fromEntries(Array.from({ length: 10_001 }, (_, i) => [`R${i}`, 1n])) };
    expect((await refusal(client.listResourceProviders(bigMap))).code).toBe(Code.InvalidArgument);
    expect(handled.length).toBe(before);
    await client.listResourceProviders({ name: "x".repeat(65_536), requiredTraits: ["A", "B"] });
    expect(handled.length).toBe(before + 1);
  });

  it("an unpaired surrogate never reaches the handler (protobuf's JSON decoding refuses it first)", async () => {
    const before = handled.length;
    const res = await fetch(`${server.url}/stratus.scheduler.v1.PlacementService/ListResourceProviders`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: '{"name":"half \\ud800"}',
    });
    expect(res.status).toBe(400);
    expect(handled.length).toBe(before);
  });
});

describe("checkMessage", () => {
  const bounds = { maxStringLength: 8, maxEntries: 2 };
  const check = (init: Parameters<typeof create<typeof ListResourceProvidersRequestSchema>>[1]) => {
    try {
      checkMessage(
        ListResourceProvidersRequestSchema,
        create(ListResourceProvidersRequestSchema, init) as unknown as Record<string, unknown>,
        bounds,
      );
      return "ok";
    } catch (err) {
      return (err as StratusError).message;
    }
  };

  it("applies the bounds it is given to every string, map key and list", () => {
    expect(check({ name: "12345678", requiredTraits: ["a", "b"], resources: { VCPU: 1n } })).toBe("ok");
    expect(check({ name: "half \ud800" })).toBe(
      "invalid ListResourceProvidersRequest: field name must not contain unpaired UTF-16 surrogates",
    );
    expect(check({ name: "123456789" })).toBe(
      "invalid ListResourceProvidersRequest: field name is longer than 8 characters",
    );
    expect(check({ resources: { VERY_LONG_CLASS: 1n } })).toBe(
      "invalid ListResourceProvidersRequest: field resources key is longer than 8 characters",
    );
    expect(check({ memberOf: [{ aggregateUuids: ["a", "b", "c"] }] })).toBe(
      "invalid ListResourceProvidersRequest: field member_of[0].aggregate_uuids has more than 2 entries",
    );
    expect(check({ memberOf: [{}, {}, {}] })).toContain("field member_of has more than 2 entries");
  });
});
