import { createClient, type Interceptor, type Transport, type UnaryRequest } from "@connectrpc/connect";
import {
  createConnectTransport,
  createGrpcTransport,
  createGrpcWebTransport,
} from "@connectrpc/connect-node";
import { PlacementService } from "@stratus/contracts/scheduler/v1/placement";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseConfig, rpcConfig } from "../config.js";
import { StratusError } from "../errors.js";
import { curlCall, startTestRpcServer } from "../testing/rpc.js";
import { makeTestCertificates, type TestCertificates } from "../testing/tls.js";
import { bindService } from "./binding.js";
import { peerTransport, serviceClient } from "./client.js";
import { FastCall } from "./fast-call.js";
import type { RpcServer } from "./server.js";

const UUID = "7c0a5d1e-2b7f-4d0e-9a51-3f0c2e1b9d44";
/** OpenSSL's words for a certificate that does not chain to a trusted CA. */
const UNVERIFIED = /unable to (verify the first|get local issuer) certificate/;

/**
 * How each call went: which server path answered it (the fast path or connect-node's adapter) and
 * which client sent it (connect-es names itself in user-agent; the mesh's short client does not).
 */
const seen: string[] = [];
/** The scheme of each call's url as the pipeline sees it. */
const schemes: string[] = [];
const watcher: Interceptor = (next) => (req) => {
  const server = (req as UnaryRequest) instanceof FastCall ? "fast path" : "adapter";
  const client = req.header.get("user-agent")?.startsWith("connect-es/") ? "connect-es" : "short client";
  seen.push(`${server} <- ${client}`);
  schemes.push(new URL(req.url).protocol);
  return next(req);
};
const placement = bindService(PlacementService, {
  getResourceProvider: (req) => ({ provider: { uuid: req.uuid, name: "rack1-1", generation: 7n } }),
});

let certs: TestCertificates;
let server: RpcServer;
beforeAll(async () => {
  certs = makeTestCertificates();
  server = await startTestRpcServer([placement], {
    interceptors: [watcher],
    tls: certs.server,
  });
});
afterAll(async () => {
  await server?.close();
  certs?.remove();
});

/** The mesh's own client, as a service makes it from its environment. */
const meshTransport = (env: Record<string, string>, ca?: Buffer) =>
  peerTransport(server.url, { ...parseConfig(rpcConfig, env), ca });

describe("the RPC port over TLS", () => {
  it("has an https:// url", () => {
    expect(server.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
  });

  const transports: [string, string, () => Transport][] = [
    [
      "gRPC (h2)",
      "adapter <- connect-es",
      () => createGrpcTransport({ baseUrl: server.url, nodeOptions: { ca: certs.ca } }),
    ],
    [
      "Connect JSON over HTTP/2",
      "adapter <- connect-es",
      () =>
        createConnectTransport({
          baseUrl: server.url,
          httpVersion: "2",
          useBinaryFormat: false,
          nodeOptions: { ca: certs.ca },
        }),
    ],
    [
      "Connect JSON over HTTP/1.1",
      "adapter <- connect-es",
      () =>
        createConnectTransport({
          baseUrl: server.url,
          httpVersion: "1.1",
          useBinaryFormat: false,
          nodeOptions: { ca: certs.ca },
        }),
    ],
    [
      "gRPC-Web over HTTP/1.1",
      "adapter <- connect-es",
      () =>
        createGrpcWebTransport({ baseUrl: server.url, httpVersion: "1.1", nodeOptions: { ca: certs.ca } }),
    ],
    ["the mesh's client with the CA", "fast path <- short client", () => meshTransport({}, certs.ca)],
    [
      "the mesh's client with the CA, its short path off",
      "fast path <- connect-es",
      () => meshTransport({ STRATUS_RPC_FAST: "0" }, certs.ca),
    ],
  ];

  it.each(transports)("answers %s", async (_, path, make) => {
    const before = seen.length;
    const res = await createClient(PlacementService, make()).getResourceProvider({ uuid: UUID });
    expect(res.provider).toMatchObject({ uuid: UUID, generation: 7n });
    expect(seen.slice(before)).toEqual([path]);
    expect(schemes.slice(before)).toEqual(["https:"]);
  });

  it("answers curl over HTTP/2 (ALPN) and HTTP/1.1", async () => {
    const url = `${server.url}/stratus.scheduler.v1.PlacementService/GetResourceProvider`;
    const trust = ["--cacert", certs.caFile];
    expect((await curlCall(url, { uuid: UUID }, trust)).version).toBe("2");
    expect((await curlCall(url, { uuid: UUID }, [...trust, "--http1.1"])).version).toBe("1.1");
  });

  it.each([
    ["on the fast path", {}],
    ["with the fast path off", { STRATUS_RPC_FAST: "0" }],
  ])("refuses, in the mesh's client without the CA, a certificate it cannot verify (%s)", async (_, env) => {
    const before = seen.length;
    const err = await createClient(PlacementService, meshTransport(env))
      .getResourceProvider({ uuid: UUID })
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    expect(String(err)).toMatch(UNVERIFIED);
    expect(seen.length).toBe(before);
  });
});

describe("serviceClient over TLS, as a service configures it (TLS_CA_FILE)", () => {
  const saved = process.env.TLS_CA_FILE;
  afterAll(() => {
    if (saved === undefined) delete process.env.TLS_CA_FILE;
    else process.env.TLS_CA_FILE = saved;
  });

  it("verifies the peer with the CA and keeps the fast path", async () => {
    process.env.TLS_CA_FILE = certs.caFile;
    const before = seen.length;
    const res = await serviceClient(PlacementService, server.url).getResourceProvider({ uuid: UUID });
    expect(res.provider?.uuid).toBe(UUID);
    expect(seen.slice(before)).toEqual(["fast path <- short client"]);
  });

  it("refuses a peer it cannot verify without it", async () => {
    delete process.env.TLS_CA_FILE;
    // Another name of the same server, so that a transport of its own is made (one per URL).
    const url = server.url.replace("127.0.0.1", "localhost");
    const err = await serviceClient(PlacementService, url)
      .getResourceProvider({ uuid: UUID })
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    expect(err).toBeInstanceOf(StratusError);
    expect((err as StratusError).kind).toBe("unavailable");
    expect((err as StratusError).message).toMatch(UNVERIFIED);
  });
});
