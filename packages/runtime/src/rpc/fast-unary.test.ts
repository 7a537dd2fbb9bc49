// The short unary path must speak Connect exactly: each end is checked against connect-es's own
// other end, and everything it does not take (gRPC, JSON) must still reach connect-node.
import http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { Code, createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { PlacementService } from "@stratus/contracts/scheduler/v1/placement";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { currentContext, newRequestId, runWithContext, systemContext } from "../context.js";
import { StratusError } from "../errors.js";
import { fastTestClient, rawCall, refusal, startTestRpcServer } from "../testing/rpc.js";
import { bindService } from "./binding.js";
import type { RpcServer } from "./server.js";

const UUID = "7c0a5d1e-2b7f-4d0e-9a51-3f0c2e1b9d44";
const seen: string[] = [];

// getResourceProvider answers, refuses (a StratusError with its kind) or waits, by uuid.
const placement = bindService(PlacementService, {
  async getResourceProvider(req) {
    seen.push(currentContext()?.requestId ?? "");
    if (req.uuid === "missing") throw new StratusError("not_found", "no such provider");
    if (req.uuid === "race") throw new StratusError("conflict", "generation changed");
    if (req.uuid === "crash") throw new Error("boom");
    if (req.uuid === "slow") await new Promise((r) => setTimeout(r, 500));
    return { provider: { uuid: req.uuid, name: "rack1-1", generation: 7n } };
  },
});

let fast: RpcServer;
let stock: RpcServer;
let stockUrl: string;

/** The same server as every service's, with the short path turned off: connect-node answers all. */
function stockServer(port = 0): Promise<RpcServer> {
  return startTestRpcServer([placement], { port, fast: false });
}

beforeAll(async () => {
  fast = await startTestRpcServer([placement]);
  stock = await stockServer();
  stockUrl = stock.url;
});

afterAll(async () => {
  await fast.close();
  await stock.close();
});

const shortClient = (baseUrl: string, defaultTimeoutMs = 30_000) =>
  fastTestClient(PlacementService, baseUrl, { defaultTimeoutMs });

describe("the short unary path, server side, with connect-es's client", () => {
  const stockClient = (binary: boolean) =>
    createClient(
      PlacementService,
      createConnectTransport({ baseUrl: fast.url, httpVersion: "2", useBinaryFormat: binary }),
    );

  it("answers a binary call and reads the request id from its headers", async () => {
    const requestId = newRequestId();
    const res = await stockClient(true).getResourceProvider(
      { uuid: UUID },
      { headers: { "x-openstack-request-id": requestId } },
    );
    expect(res.provider).toMatchObject({ uuid: UUID, name: "rack1-1", generation: 7n });
    expect(seen.at(-1)).toBe(requestId);
  });

  it("refuses with the code and the kind of the StratusError", async () => {
    const err = await refusal(stockClient(true).getResourceProvider({ uuid: "missing" }));
    expect(err.code).toBe(Code.NotFound);
    expect(err.rawMessage).toBe("no such provider");
    expect(err.metadata.get("x-stratus-error-kind")).toBe("not_found");
    const crash = await refusal(stockClient(true).getResourceProvider({ uuid: "crash" }));
    expect(crash.code).toBe(Code.Internal);
    expect(crash.rawMessage).toBe("internal error");
  });

  it("answers an undecodable body with InvalidArgument", async () => {
    const session = http2.connect(fast.url);
    try {
      const { answer } = rawCall(
        session,
        "/stratus.scheduler.v1.PlacementService/GetResourceProvider",
        {},
        Buffer.from([0x0a, 0xff]), // field 1, length 255, nothing after it
      );
      const { status, body } = await answer;
      expect(status).toBe(400);
      expect(JSON.parse(body)).toMatchObject({ code: "invalid_argument" });
    } finally {
      session.close();
    }
  });

  it("leaves JSON and gRPC to connect-node", async () => {
    const json = await stockClient(false).getResourceProvider({ uuid: UUID });
    expect(json.provider?.name).toBe("rack1-1");
    const grpc = createClient(PlacementService, createGrpcTransport({ baseUrl: fast.url }));
    expect((await grpc.getResourceProvider({ uuid: UUID })).provider?.generation).toBe(7n);
    const err = await refusal(grpc.getResourceProvider({ uuid: "missing" }));
    expect(err.code).toBe(Code.NotFound);
  });
});

describe("the short unary path, client side", () => {
  it.each([
    ["connect-node's handler", () => stockUrl],
    ["the short path's handler", () => fast.url],
  ])("calls %s with the context's request id and gets its answer", async (_, url) => {
    const ctx = systemContext();
    const res = await runWithContext(ctx, () => shortClient(url()).getResourceProvider({ uuid: UUID }));
    expect(res.provider?.uuid).toBe(UUID);
    expect(seen.at(-1)).toBe(ctx.requestId);
  });

  it.each([
    ["connect-node's handler", () => stockUrl],
    ["the short path's handler", () => fast.url],
  ])("gets %s's refusals with their code and kind", async (_, url) => {
    const err = await refusal(shortClient(url()).getResourceProvider({ uuid: "race" }));
    expect(err.code).toBe(Code.Aborted);
    expect(err.rawMessage).toBe("generation changed");
    expect(err.metadata.get("x-stratus-error-kind")).toBe("conflict");
  });

  it("gives up after the timeout, and the session serves the next call", async () => {
    const client = shortClient(fast.url, 100);
    const err = await refusal(client.getResourceProvider({ uuid: "slow" }));
    expect(err.code).toBe(Code.DeadlineExceeded);
    expect((await client.getResourceProvider({ uuid: UUID })).provider?.uuid).toBe(UUID);
  });

  it("stops on its caller's abort signal", async () => {
    const ac = new AbortController();
    const call = shortClient(fast.url).getResourceProvider({ uuid: "slow" }, { signal: ac.signal });
    ac.abort();
    expect((await refusal(call)).code).toBe(Code.Canceled);
  });

  it("says Unavailable when nothing listens, and reconnects once something does", async () => {
    const probe = http2.createServer();
    await new Promise<void>((r) => probe.listen(0, "127.0.0.1", r));
    const port = (probe.address() as AddressInfo).port;
    await new Promise((r) => probe.close(r));
    const client = shortClient(`http://127.0.0.1:${port}`);
    expect((await refusal(client.getResourceProvider({ uuid: UUID }))).code).toBe(Code.Unavailable);

    const again = await stockServer(port);
    try {
      expect((await client.getResourceProvider({ uuid: UUID })).provider?.uuid).toBe(UUID);
    } finally {
      await again.close();
    }
  });
});
