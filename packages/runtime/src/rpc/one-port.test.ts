import http from "node:http";
import http2 from "node:http2";
import net from "node:net";
import { createClient, type Transport } from "@connectrpc/connect";
import {
  createConnectTransport,
  createGrpcTransport,
  createGrpcWebTransport,
} from "@connectrpc/connect-node";
import { PlacementService } from "@stratus/contracts/scheduler/v1/placement";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseConfig, rpcConfig } from "../config.js";
import { curlCall, fastPathRecorder, rawCall, startTestRpcServer } from "../testing/rpc.js";
import { bindService } from "./binding.js";
import { peerTransport } from "./client.js";
import type { RpcServer } from "./server.js";

const UUID = "7c0a5d1e-2b7f-4d0e-9a51-3f0c2e1b9d44";
const METHOD = "/stratus.scheduler.v1.PlacementService/GetResourceProvider";

/** Whether the fast path took each call, in order. */
const { interceptor: watcher, taken: seen } = fastPathRecorder();

/** Calls for uuid "hold" wait until the test releases them. */
let held: { entered: () => void; release: Promise<void> } | undefined;
const placement = bindService(PlacementService, {
  async getResourceProvider(req) {
    if (req.uuid === "hold" && held) {
      held.entered();
      await held.release;
    }
    return { provider: { uuid: req.uuid, name: "rack1-1", generation: 7n } };
  },
});

const meshTransport = (baseUrl: string) => peerTransport(baseUrl, parseConfig(rpcConfig, {}));

let server: RpcServer;
beforeAll(async () => {
  server = await startTestRpcServer([placement], { interceptors: [watcher] });
});
afterAll(() => server.close());

describe("one RPC port, HTTP/1.1 and h2c", () => {
  const transports: [string, boolean, () => Transport][] = [
    [
      "Connect JSON over HTTP/1.1",
      false,
      () => createConnectTransport({ baseUrl: server.url, httpVersion: "1.1", useBinaryFormat: false }),
    ],
    [
      "Connect binary over HTTP/1.1",
      false,
      () => createConnectTransport({ baseUrl: server.url, httpVersion: "1.1", useBinaryFormat: true }),
    ],
    [
      "gRPC-Web over HTTP/1.1",
      false,
      () => createGrpcWebTransport({ baseUrl: server.url, httpVersion: "1.1" }),
    ],
    [
      "Connect JSON over h2c",
      false,
      () => createConnectTransport({ baseUrl: server.url, httpVersion: "2", useBinaryFormat: false }),
    ],
    ["gRPC-Web over h2c", false, () => createGrpcWebTransport({ baseUrl: server.url, httpVersion: "2" })],
    ["gRPC over h2c", false, () => createGrpcTransport({ baseUrl: server.url })],
    [
      "Connect binary over h2c (connect-es's client)",
      true,
      () => createConnectTransport({ baseUrl: server.url, httpVersion: "2", useBinaryFormat: true }),
    ],
    ["Connect binary over h2c (the mesh's client)", true, () => meshTransport(server.url)],
  ];

  it.each(transports)("answers %s, through the pipeline", async (_, fast, make) => {
    const before = seen.length;
    const res = await createClient(PlacementService, make()).getResourceProvider({ uuid: UUID });
    expect(res.provider).toMatchObject({ uuid: UUID, generation: 7n });
    expect(seen.slice(before)).toEqual([fast]);
  });

  it("answers curl with and without --http2-prior-knowledge", async () => {
    const answer = { provider: { uuid: UUID, name: "rack1-1", generation: "7" } };
    const url = `${server.url}${METHOD}`;
    expect(await curlCall(url, { uuid: UUID })).toEqual({ body: answer, version: "1.1" });
    expect(await curlCall(url, { uuid: UUID }, ["--http2-prior-knowledge"])).toEqual({
      body: answer,
      version: "2",
    });
  });

  it("keeps an HTTP/1.1 connection alive from one call to the next", async () => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const reused: boolean[] = [];
      for (let i = 0; i < 3; i++) {
        const res = await post(agent, server.port, { uuid: UUID });
        expect(res.status).toBe(200);
        reused.push(res.reusedSocket);
      }
      expect(reused).toEqual([false, true, true]);
    } finally {
      agent.destroy();
    }
  });

  it("waits for the first bytes that tell the two apart, however they are split", async () => {
    // The HTTP/2 preface in two pieces, the first a prefix of it: still HTTP/2 (the server's
    // SETTINGS frame comes back).
    const h2 = await rawExchange(server.port, [
      Buffer.from("PRI * HT"),
      Buffer.concat([Buffer.from("TP/2.0\r\n\r\nSM\r\n\r\n"), EMPTY_SETTINGS]),
    ]);
    expect(h2.subarray(0, 9)[3]).toBe(SETTINGS_FRAME);
    // "P" could begin the preface; "POST" cannot: HTTP/1.1.
    const body = JSON.stringify({ uuid: UUID });
    const h1 = await rawExchange(server.port, [
      Buffer.from("P"),
      Buffer.from(
        `OST ${METHOD} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n` +
          `content-length: ${body.length}\r\nconnection: close\r\n\r\n${body}`,
      ),
    ]);
    expect(h1.toString()).toMatch(/^HTTP\/1\.1 200 OK\r\n[\s\S]*"uuid":"7c0a5d1e/);
  });
});

describe("closing the server", () => {
  it("does not wait for idle HTTP/1.1 keep-alive connections or pooled HTTP/2 sessions", async () => {
    const own = await startTestRpcServer([placement]);
    const agent = new http.Agent({ keepAlive: true });
    const session = http2.connect(own.url);
    try {
      expect((await post(agent, own.port, { uuid: UUID })).status).toBe(200);
      await createClient(PlacementService, meshTransport(own.url)).getResourceProvider({ uuid: UUID });
      const h2 = rawCall(session, METHOD, JSON_CALL, Buffer.from(JSON.stringify({ uuid: UUID })));
      expect((await h2.answer).status).toBe(200);
      const goaway = new Promise((resolve) => session.once("goaway", resolve));
      const started = performance.now();
      await own.close();
      // Far below the grace period (2 s) after which what is still open is dropped.
      expect(performance.now() - started).toBeLessThan(1000);
      await goaway;
    } finally {
      agent.destroy();
      session.destroy();
    }
  });

  it("lets an HTTP/1.1 call in flight finish, then closes its connection", async () => {
    const own = await startTestRpcServer([placement]);
    const agent = new http.Agent({ keepAlive: true });
    let release = () => {};
    const entered = new Promise<void>((resolve) => {
      held = { entered: resolve, release: new Promise<void>((r) => (release = r)) };
    });
    try {
      const answer = post(agent, own.port, { uuid: "hold" });
      await entered;
      const closed = own.close();
      release();
      const res = await answer;
      expect(res.status).toBe(200);
      expect(res.headers.connection).toBe("close");
      const released = performance.now();
      await closed;
      expect(performance.now() - released).toBeLessThan(1000);
    } finally {
      held = undefined;
      agent.destroy();
    }
  });
});

const JSON_CALL = { "content-type": "application/json" };
const SETTINGS_FRAME = 0x4;
/** An HTTP/2 SETTINGS frame with no settings: length 0, type 4, no flags, stream 0. */
const EMPTY_SETTINGS = Buffer.from([0, 0, 0, SETTINGS_FRAME, 0, 0, 0, 0, 0]);

/** Writes each piece on its own (a pause between them) and returns the first bytes answered. */
async function rawExchange(port: number, pieces: Buffer[]): Promise<Buffer> {
  const socket = net.connect(port, "127.0.0.1");
  socket.setNoDelay(true);
  await new Promise((resolve) => socket.once("connect", resolve));
  const answer = new Promise<Buffer>((resolve, reject) => {
    socket.once("data", resolve);
    socket.once("error", reject);
  });
  try {
    for (const [i, piece] of pieces.entries()) {
      if (i > 0) await new Promise((resolve) => setTimeout(resolve, 30));
      socket.write(piece);
    }
    return await answer;
  } finally {
    socket.destroy();
  }
}

interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  reusedSocket: boolean;
  body: string;
}

/** A Connect JSON call over HTTP/1.1. */
function post(agent: http.Agent, port: number, message: unknown): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        agent,
        host: "127.0.0.1",
        port,
        method: "POST",
        path: METHOD,
        headers: JSON_CALL,
      },
      (res) => {
        let body = "";
        res.on("data", (c: Buffer) => {
          body += c.toString();
        });
        res.on("end", () =>
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            reusedSocket: req.reusedSocket,
            body,
          }),
        );
      },
    );
    req.on("error", reject);
    req.end(JSON.stringify(message));
  });
}
