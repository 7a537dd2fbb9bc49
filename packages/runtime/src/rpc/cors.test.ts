// CORS on the RPC port (cors.ts): configured by RPC_CORS_*, a preflight from an allowed origin is
// answered with what Connect and gRPC-Web browser clients need, over either HTTP version, and
// calls from it carry the headers a browser wants; unconfigured, no CORS header is ever sent.
import http from "node:http";
import http2 from "node:http2";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { PlacementService } from "@stratus/contracts/scheduler/v1/placement";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseConfig, rpcConfig } from "../config.js";
import { fastPathRecorder, rawCall, startTestRpcServer } from "../testing/rpc.js";
import { bindService } from "./binding.js";
import { corsPolicy } from "./cors.js";
import type { RpcServer } from "./server.js";

const METHOD = "/stratus.scheduler.v1.PlacementService/GetResourceProvider";
const APP = "https://app.example";

const { interceptor: watcher, taken: seen } = fastPathRecorder();
const placement = bindService(PlacementService, {
  getResourceProvider: (req) => ({ provider: { uuid: req.uuid, name: "rack1-1", generation: 7n } }),
});

const policyOf = (env: Record<string, string>) => corsPolicy(parseConfig(rpcConfig, env));

let open: RpcServer;
let closed: RpcServer;
let anyOrigin: RpcServer;
beforeAll(async () => {
  open = await startTestRpcServer([placement], {
    interceptors: [watcher],
    cors: policyOf({ RPC_CORS_ORIGINS: `${APP}, https://admin.example:8443`, RPC_CORS_HEADERS: "x-trace" }),
  });
  closed = await startTestRpcServer([placement], { cors: policyOf({}) });
  anyOrigin = await startTestRpcServer([placement], { cors: policyOf({ RPC_CORS_ORIGINS: "*" }) });
});
afterAll(async () => {
  await Promise.all([open.close(), closed.close(), anyOrigin.close()]);
});

const preflight = (origin: string) => ({
  method: "OPTIONS",
  headers: {
    origin,
    "access-control-request-method": "POST",
    "access-control-request-headers": "content-type,connect-protocol-version",
  },
});

describe("CORS on the RPC port", () => {
  it.each(["HTTP/1.1", "h2c"] as const)(
    "answers a preflight from an allowed origin over %s",
    async (version) => {
      const res = await exchange(version, open.port, preflight(APP));
      expect(res.status).toBe(204);
      expect(res.headers["access-control-allow-origin"]).toBe(APP);
      expect(res.headers["access-control-allow-methods"]).toBe("POST, GET");
      const allowed = String(res.headers["access-control-allow-headers"]).split(", ");
      for (const h of [
        "content-type",
        "connect-protocol-version",
        "connect-timeout-ms",
        "x-grpc-web",
        "x-user-agent",
        "grpc-timeout",
        "x-openstack-request-id",
        "x-auth-token",
        "x-trace",
      ]) {
        expect(allowed).toContain(h);
      }
      expect(res.headers["access-control-max-age"]).toBe("7200");
    },
  );

  it("grants nothing to an origin not allowed", async () => {
    const res = await exchange("HTTP/1.1", open.port, preflight("https://evil.example"));
    expect(res.status).toBe(204);
    expect(corsHeaders(res.headers)).toEqual([]);
    const call = await exchange("HTTP/1.1", open.port, callFrom("https://evil.example"));
    expect(call.status).toBe(200);
    expect(corsHeaders(call.headers)).toEqual([]);
  });

  it.each(["HTTP/1.1", "h2c"] as const)(
    "marks a call from an allowed origin over %s for the browser",
    async (version) => {
      const res = await exchange(version, open.port, callFrom("https://admin.example:8443"));
      expect(res.status).toBe(200);
      expect(res.headers["access-control-allow-origin"]).toBe("https://admin.example:8443");
      expect(res.headers.vary).toBe("Origin");
      const exposed = String(res.headers["access-control-expose-headers"]).split(", ");
      for (const h of ["grpc-status", "grpc-message", "x-openstack-request-id", "x-stratus-error-kind"]) {
        expect(exposed).toContain(h);
      }
    },
  );

  it("marks a call the fast path answers, and leaves the mesh's own calls on it", async () => {
    const before = seen.length;
    let allowOrigin: string | null = null;
    const client = createClient(
      PlacementService,
      createConnectTransport({ baseUrl: open.url, httpVersion: "2", useBinaryFormat: true }),
    );
    await client.getResourceProvider(
      { uuid: "x" },
      { headers: { origin: APP }, onHeader: (h) => (allowOrigin = h.get("access-control-allow-origin")) },
    );
    await client.getResourceProvider({ uuid: "x" });
    expect(allowOrigin).toBe(APP);
    expect(seen.slice(before)).toEqual([true, true]);
  });

  it("answers any origin with * when told to", async () => {
    const res = await exchange("HTTP/1.1", anyOrigin.port, preflight("https://anyone.example"));
    expect(res.headers["access-control-allow-origin"]).toBe("*");
    const call = await exchange("h2c", anyOrigin.port, callFrom("https://anyone.example"));
    expect(call.headers["access-control-allow-origin"]).toBe("*");
  });

  it("sends no CORS header when no origin is configured", async () => {
    for (const version of ["HTTP/1.1", "h2c"] as const) {
      const res = await exchange(version, closed.port, preflight(APP));
      expect(res.status).not.toBe(204);
      expect(corsHeaders(res.headers)).toEqual([]);
      const call = await exchange(version, closed.port, callFrom(APP));
      expect(call.status).toBe(200);
      expect(corsHeaders(call.headers)).toEqual([]);
    }
  });

  it("refuses origins that are not origins, naming the variable", () => {
    for (const bad of ["app.example", "https://app.example/path", "null"]) {
      expect(() => policyOf({ RPC_CORS_ORIGINS: bad })).toThrow(/RPC_CORS_ORIGINS=.*scheme:\/\/host/);
    }
    expect(() => policyOf({ RPC_CORS_HEADERS: "bad header" })).toThrow(/RPC_CORS_HEADERS=/);
  });
});

interface Request {
  method: string;
  headers: Record<string, string>;
  body?: string;
}
interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
}

const callFrom = (origin: string): Request => ({
  method: "POST",
  headers: { origin, "content-type": "application/json" },
  body: JSON.stringify({ uuid: "x" }),
});

function corsHeaders(headers: http.IncomingHttpHeaders): string[] {
  return Object.keys(headers).filter((h) => h.startsWith("access-control-"));
}

function exchange(version: "HTTP/1.1" | "h2c", port: number, req: Request): Promise<Answer> {
  return version === "HTTP/1.1" ? exchange1(port, req) : exchange2(port, req);
}

function exchange1(port: number, req: Request): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const r = http.request({ host: "127.0.0.1", port, path: METHOD, ...req, agent: false }, (res) => {
      res.resume();
      res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers }));
    });
    r.on("error", reject);
    r.end(req.body);
  });
}

async function exchange2(port: number, req: Request): Promise<Answer> {
  const session = http2.connect(`http://127.0.0.1:${port}`);
  try {
    const headers = { ":method": req.method, ...req.headers };
    return await rawCall(session, METHOD, headers, Buffer.from(req.body ?? "")).answer;
  } finally {
    session.close();
  }
}
