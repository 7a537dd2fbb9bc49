// The one pipeline: an interceptor added to a server's pipeline sees every call, on the fast
// unary path and on connect-node's adapter (Connect JSON, gRPC, gRPC-Web) alike, inside the
// caller's request context, and a refusal it throws reaches the caller as the same error on both.
import { Code, createClient, type Interceptor, type Transport, type UnaryRequest } from "@connectrpc/connect";
import {
  createConnectTransport,
  createGrpcTransport,
  createGrpcWebTransport,
} from "@connectrpc/connect-node";
import { PlacementService } from "@stratus/contracts/scheduler/v1/placement";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { currentContext, newRequestId } from "../context.js";
import { StratusError } from "../errors.js";
import { refusal, startTestRpcServer } from "../testing/rpc.js";
import { bindService } from "./binding.js";
import { FastCall } from "./fast-call.js";
import { fastUnaryTransport } from "./fast-client.js";
import type { RpcServer } from "./server.js";

const UUID = "7c0a5d1e-2b7f-4d0e-9a51-3f0c2e1b9d44";

interface Seen {
  path: string;
  /** Whether the fast path (fast-server.ts) took the call. */
  fast: boolean;
  /** The request id of the context the interceptor ran in. */
  requestId: string | undefined;
}
const seen: Seen[] = [];

/** Records each call; refuses those that carry x-test-refuse. */
const watcher: Interceptor = (next) => async (req) => {
  seen.push({
    path: new URL(req.url).pathname,
    fast: (req as UnaryRequest) instanceof FastCall,
    requestId: currentContext()?.requestId,
  });
  if (req.header.get("x-test-refuse")) throw new StratusError("forbidden", "refused by the pipeline");
  return next(req);
};

const placement = bindService(PlacementService, {
  getResourceProvider: (req) => ({ provider: { uuid: req.uuid, name: "rack1-1", generation: 7n } }),
});

let server: RpcServer;
beforeAll(async () => {
  server = await startTestRpcServer([placement], { interceptors: [watcher] });
});
afterAll(() => server.close());

const transports: [string, boolean, () => Transport][] = [
  [
    "the fast path",
    true,
    () =>
      fastUnaryTransport({
        baseUrl: server.url,
        defaultTimeoutMs: 30_000,
        streams: createConnectTransport({ baseUrl: server.url, httpVersion: "2" }),
      }),
  ],
  [
    "connect-node, Connect JSON",
    false,
    () => createConnectTransport({ baseUrl: server.url, httpVersion: "2", useBinaryFormat: false }),
  ],
  ["connect-node, gRPC", false, () => createGrpcTransport({ baseUrl: server.url })],
  ["connect-node, gRPC-Web", false, () => createGrpcWebTransport({ baseUrl: server.url, httpVersion: "2" })],
];

describe("the RPC pipeline", () => {
  it.each(transports)(
    "runs an added interceptor on %s, inside the request context",
    async (_, fast, make) => {
      const requestId = newRequestId();
      const client = createClient(PlacementService, make());
      const res = await client.getResourceProvider(
        { uuid: UUID },
        { headers: { "x-openstack-request-id": requestId } },
      );
      expect(res.provider?.generation).toBe(7n);
      expect(seen.at(-1)).toEqual({
        path: "/stratus.scheduler.v1.PlacementService/GetResourceProvider",
        fast,
        requestId,
      });
    },
  );

  it.each(transports)("lets an added interceptor refuse a call on %s", async (_, fast, make) => {
    const client = createClient(PlacementService, make());
    const before = seen.length;
    const err = await refusal(
      client.getResourceProvider({ uuid: UUID }, { headers: { "x-test-refuse": "1" } }),
    );
    expect(seen.slice(before).map((s) => s.fast)).toEqual([fast]);
    expect(err.code).toBe(Code.PermissionDenied);
    expect(err.rawMessage).toBe("refused by the pipeline");
    expect(err.metadata.get("x-stratus-error-kind")).toBe("forbidden");
  });
});
