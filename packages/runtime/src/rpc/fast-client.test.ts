// The fast client's connection is connect-node's Http2SessionManager: PINGs keep a connection
// with calls in flight checked, an idle connection is closed, and a server going away (GOAWAY)
// lets the calls in flight finish while the next one opens a new connection.
import http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { Code, ConnectError } from "@connectrpc/connect";
import { Http2SessionManager } from "@connectrpc/connect-node";
import { PlacementService } from "@stratus/contracts/scheduler/v1/placement";
import { afterEach, describe, expect, it } from "vitest";
import { createLogger } from "../log.js";
import { everyCallerIsTools, fastTestClient } from "../testing/rpc.js";
import { bindService } from "./binding.js";
import { fastUnaryHandler } from "./fast-server.js";
import { rpcPipeline } from "./pipeline.js";

const logger = createLogger("test", "silent");
const UUID = "7c0a5d1e-2b7f-4d0e-9a51-3f0c2e1b9d44";

/** "slow" answers once `release` is called; `slowStarted` says it is in its handler. */
let release: () => void = () => undefined;
let slowStarted = false;
const placement = bindService(PlacementService, {
  async getResourceProvider(req) {
    if (req.uuid === "slow") {
      slowStarted = true;
      await new Promise<void>((resolve) => (release = resolve));
    }
    return { provider: { uuid: req.uuid, name: "rack1-1" } };
  },
});

/** A fast-path server whose sessions (connections) and the PINGs they receive can be counted. */
async function countingServer(port = 0) {
  const server = http2.createServer(
    fastUnaryHandler({
      services: [placement],
      pipeline: rpcPipeline({ logger, auth: everyCallerIsTools }),
      readMaxBytes: 1 << 20,
      logger,
      fallback: (_, res) => res.writeHead(404).end(),
    }),
  );
  const sessions: http2.ServerHttp2Session[] = [];
  let pings = 0;
  server.on("session", (s) => {
    sessions.push(s);
    s.on("ping", () => pings++);
  });
  await new Promise<void>((resolve) => server.listen(port, "127.0.0.1", resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url,
    sessions,
    pings: () => pings,
    /** Closes gracefully: GOAWAY to every connection, which may finish its calls. */
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const s of sessions) if (!s.closed) s.close();
      }),
  };
}

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  release();
  slowStarted = false;
  while (cleanups.length) await cleanups.pop()!();
});

function clientOf(url: string, sessionManager: Http2SessionManager) {
  cleanups.push(() => sessionManager.abort());
  return fastTestClient(PlacementService, url, { sessionManager });
}

/** Resolves once `check` holds (polled every 10 ms). */
function until(check: () => boolean): Promise<void> {
  return new Promise((resolve) => {
    const timer = setInterval(() => {
      if (check()) {
        clearInterval(timer);
        resolve();
      }
    }, 10);
  });
}

describe("the fast client's connection", () => {
  it("sends keepalive PINGs while a call is in flight", async () => {
    const server = await countingServer();
    cleanups.push(server.close);
    const client = clientOf(server.url, new Http2SessionManager(server.url, { pingIntervalMs: 30 }));
    const slow = client.getResourceProvider({ uuid: "slow" });
    await until(() => server.pings() >= 3);
    release();
    expect((await slow).provider?.uuid).toBe("slow");
    expect(server.sessions).toHaveLength(1);
  });

  it("closes a connection idle for longer than the idle timeout, and opens a new one when needed", async () => {
    const server = await countingServer();
    cleanups.push(server.close);
    const client = clientOf(
      server.url,
      new Http2SessionManager(server.url, { idleConnectionTimeoutMs: 100 }),
    );
    expect((await client.getResourceProvider({ uuid: UUID })).provider?.uuid).toBe(UUID);
    await until(() => server.sessions[0]!.closed || server.sessions[0]!.destroyed);
    expect((await client.getResourceProvider({ uuid: UUID })).provider?.uuid).toBe(UUID);
    expect(server.sessions).toHaveLength(2);
  });

  it("finishes a call in flight when the server goes away, and calls the next server on a new connection", async () => {
    const first = await countingServer();
    const port = Number(new URL(first.url).port);
    const client = clientOf(first.url, new Http2SessionManager(first.url));
    const slow = client.getResourceProvider({ uuid: "slow" });
    await until(() => slowStarted);
    const closed = first.close();
    release();
    expect((await slow).provider?.uuid).toBe("slow");
    await closed;
    const second = await countingServer(port);
    cleanups.push(second.close);
    expect((await client.getResourceProvider({ uuid: UUID })).provider?.uuid).toBe(UUID);
    expect(second.sessions).toHaveLength(1);
  });

  it("says Unavailable when the server resets the call's stream without an answer", async () => {
    const server = http2.createServer();
    server.on("stream", (stream) => stream.close(http2.constants.NGHTTP2_NO_ERROR));
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    cleanups.push(() => new Promise<void>((resolve) => server.close(() => resolve())));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const client = clientOf(url, new Http2SessionManager(url));
    const err = await client.getResourceProvider({ uuid: UUID }).then(
      () => undefined,
      (e: unknown) => ConnectError.from(e),
    );
    expect(err?.code).toBe(Code.Unavailable);
    expect(err?.rawMessage).toMatch(/before the answer/);
  });
});
