// The fast unary path keeps connect-node's limits: a body over readMaxBytes is refused with
// ResourceExhausted without being read to its end, the handler's signal aborts when the caller's
// deadline passes (and the caller hears DeadlineExceeded), and when the caller goes away.
import http2 from "node:http2";
import { create, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import {
  GetResourceProviderRequestSchema,
  PlacementService,
} from "@stratus/contracts/scheduler/v1/placement";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { fastTestClient, rawCall, refusal, startTestRpcServer } from "../testing/rpc.js";
import { bindService } from "./binding.js";
import type { RpcServer } from "./server.js";

const LIMIT = 1024;
const PATH = "/stratus.scheduler.v1.PlacementService/GetResourceProvider";

/** Handlers that wait for their signal: what it aborted with, and a way to know they started. */
const aborted: unknown[] = [];
let started: () => void = () => undefined;
const placement = bindService(PlacementService, {
  async getResourceProvider(req, ctx) {
    if (req.uuid === "wait") {
      started();
      await new Promise((resolve) => ctx.signal.addEventListener("abort", resolve, { once: true }));
      aborted.push(ctx.signal.reason);
      throw ctx.signal.reason;
    }
    return { provider: { uuid: req.uuid.slice(0, 36), name: "rack1-1" } };
  },
});

let server: RpcServer;
beforeAll(async () => {
  server = await startTestRpcServer([placement], { readMaxBytes: LIMIT });
});
afterAll(() => server.close());

/** A handler has started when the promise this returns resolves. */
function nextStart(): Promise<void> {
  return new Promise((resolve) => {
    started = resolve;
  });
}

const request = (uuid: string) =>
  Buffer.from(toBinary(GetResourceProviderRequestSchema, create(GetResourceProviderRequestSchema, { uuid })));

describe("the fast path's request size limit", () => {
  const big = "x".repeat(LIMIT + 1);

  it("refuses a body over readMaxBytes with ResourceExhausted, as connect-node does", async () => {
    const fast = fastTestClient(PlacementService, server.url);
    const stock = createClient(
      PlacementService,
      createConnectTransport({ baseUrl: server.url, httpVersion: "2" }),
    );
    const grpc = createClient(PlacementService, createGrpcTransport({ baseUrl: server.url }));
    for (const client of [fast, stock, grpc]) {
      const err = await refusal(client.getResourceProvider({ uuid: big }));
      expect(err.code).toBe(Code.ResourceExhausted);
      expect(err.rawMessage).toMatch(/larger than configured readMaxBytes 1024/);
      // A body within the limit is answered.
      expect((await client.getResourceProvider({ uuid: "a".repeat(36) })).provider?.name).toBe("rack1-1");
    }
  });

  it("answers before the body's end and stops its sender, declared length or not", async () => {
    const session = http2.connect(server.url);
    try {
      // Declared too long: refused on its headers.
      const declared = rawCall(session, PATH, { "content-length": String(LIMIT + 1) });
      expect((await declared.answer).status).toBe(429);
      declared.stream.close();
      // Undeclared: refused once more than the limit arrived, while the sender still has 8 MiB to go.
      const stream = session.request({
        ":method": "POST",
        ":path": PATH,
        "content-type": "application/proto",
      });
      let written = 0;
      const chunk = Buffer.alloc(16 * 1024);
      const answer = new Promise<number>((resolve) =>
        stream.on("response", (h) => resolve(Number(h[":status"]))),
      );
      // The server resets the stream (NO_ERROR) once its answer is out: the sender stops there.
      const stopped = new Promise<void>((resolve) => stream.on("aborted", resolve));
      stream.on("error", () => undefined);
      const pump = () => {
        while (written < 8 * 1024 * 1024 && !stream.destroyed) {
          written += chunk.length;
          if (!stream.write(chunk)) {
            stream.once("drain", pump);
            return;
          }
        }
      };
      pump();
      expect(await answer).toBe(429);
      await stopped;
      expect(stream.rstCode).toBe(http2.constants.NGHTTP2_NO_ERROR);
      expect(written).toBeLessThan(8 * 1024 * 1024);
    } finally {
      session.destroy();
    }
  });
});

describe("the fast path's aborts", () => {
  it("aborts the handler when the caller's deadline passes, and answers DeadlineExceeded", async () => {
    const session = http2.connect(server.url);
    try {
      const before = aborted.length;
      const t0 = Date.now();
      const { answer } = rawCall(session, PATH, { "connect-timeout-ms": "150" }, request("wait"));
      const { status, body } = await answer;
      expect(Date.now() - t0).toBeGreaterThanOrEqual(140);
      expect(status).toBe(504);
      expect(JSON.parse(body)).toMatchObject({ code: "deadline_exceeded" });
      expect(aborted.slice(before).map((r) => ConnectError.from(r).code)).toEqual([Code.DeadlineExceeded]);
    } finally {
      session.close();
    }
  });

  it.each([
    ["resets the stream", (s: http2.ClientHttp2Stream) => s.close(http2.constants.NGHTTP2_CANCEL)],
    ["closes the session", (s: http2.ClientHttp2Stream) => s.session?.destroy()],
  ])("aborts the handler when the caller %s", async (_, leave) => {
    const session = http2.connect(server.url);
    session.on("error", () => undefined);
    try {
      const before = aborted.length;
      const handlerStarted = nextStart();
      const { stream, answer } = rawCall(session, PATH, {}, request("wait"));
      answer.catch(() => undefined);
      await handlerStarted;
      const handlerAborted = new Promise<void>((resolve) => {
        const check = setInterval(() => {
          if (aborted.length > before) {
            clearInterval(check);
            resolve();
          }
        }, 5);
      });
      leave(stream);
      await handlerAborted;
      expect(aborted.slice(before).map((r) => ConnectError.from(r).code)).toEqual([Code.Canceled]);
    } finally {
      session.destroy();
    }
  });
});
