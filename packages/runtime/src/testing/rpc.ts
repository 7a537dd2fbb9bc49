// For the runtime's own RPC tests: a server on a free port of this host, a client on the fast
// path, the error a call was refused with, which path answered, and calls made by hand or by curl.
import { execFile } from "node:child_process";
import type http2 from "node:http2";
import { promisify } from "node:util";
import type { DescService } from "@bufbuild/protobuf";
import {
  type Client,
  ConnectError,
  createClient,
  type Interceptor,
  type UnaryRequest,
} from "@connectrpc/connect";
import { createConnectTransport, type Http2SessionManager } from "@connectrpc/connect-node";
import type { CallAuthentication } from "../auth/rpc-authentication.js";
import { servicePrincipal } from "../context.js";
import { createLogger } from "../log.js";
import type { ServiceBinding } from "../rpc/binding.js";
import { FastCall } from "../rpc/fast-call.js";
import { fastUnaryTransport } from "../rpc/fast-client.js";
import { type RpcServer, type RpcServerOptions, startRpcServer } from "../rpc/server.js";

const TOOLS = servicePrincipal("tools");

/**
 * For the tests of the transports, which are not about who calls: every call counts as made by
 * `tools` (the harness's principal) and is allowed. Authentication has tests of its own
 * (rpc/authentication.test.ts, test/mesh-auth/).
 */
export const everyCallerIsTools: CallAuthentication = {
  principalOf: async () => TOOLS,
  authorize() {},
};

/**
 * A server answering `services` on 127.0.0.1 (a free port unless given), logging nothing; its
 * callers are not authenticated unless `auth` is given.
 */
export function startTestRpcServer(
  services: ServiceBinding[],
  options: Partial<RpcServerOptions> = {},
): Promise<RpcServer> {
  return startRpcServer({
    name: "test",
    host: "127.0.0.1",
    port: 0,
    services,
    logger: createLogger("test", "silent"),
    auth: everyCallerIsTools,
    ...options,
  });
}

/** A client whose unary calls take the fast path (streams: connect-node's transport). */
export function fastTestClient<S extends DescService>(
  service: S,
  baseUrl: string,
  options: { defaultTimeoutMs?: number; sessionManager?: Http2SessionManager } = {},
): Client<S> {
  const { sessionManager } = options;
  return createClient(
    service,
    fastUnaryTransport({
      baseUrl,
      defaultTimeoutMs: options.defaultTimeoutMs ?? 30_000,
      streams: createConnectTransport({
        baseUrl,
        httpVersion: "2",
        ...(sessionManager ? { sessionManager } : {}),
      }),
      ...(sessionManager ? { sessionManager } : {}),
    }),
  );
}

/** The ConnectError a call was refused with; throws if it was answered, or failed otherwise. */
export async function refusal(call: Promise<unknown>): Promise<ConnectError> {
  const outcome = await call.then(
    () => new Error("the call was answered, not refused"),
    (err: unknown) => err,
  );
  if (outcome instanceof ConnectError) return outcome;
  throw outcome;
}

export interface RawAnswer {
  status: number;
  headers: http2.IncomingHttpHeaders;
  body: string;
}

/**
 * A Connect binary call written by hand on `session`: what the fast path receives from any
 * client (`headers` may change the method or the content type). Without a body, the request is
 * left open.
 */
export function rawCall(
  session: http2.ClientHttp2Session,
  path: string,
  headers: http2.OutgoingHttpHeaders,
  body?: Buffer,
): { stream: http2.ClientHttp2Stream; answer: Promise<RawAnswer> } {
  const stream = session.request({
    ":method": "POST",
    ":path": path,
    "content-type": "application/proto",
    ...headers,
  });
  const answer = new Promise<RawAnswer>((resolve, reject) => {
    let status = 0;
    let responseHeaders: http2.IncomingHttpHeaders = {};
    let text = "";
    stream.on("response", (h) => {
      status = Number(h[":status"]);
      responseHeaders = h;
    });
    stream.on("data", (c: Buffer) => {
      text += c.toString();
    });
    stream.on("end", () => resolve({ status, headers: responseHeaders, body: text }));
    stream.on("error", reject);
  });
  if (body) stream.end(body);
  return { stream, answer };
}

/**
 * An interceptor for a server's pipeline that records, for each call, whether the fast path
 * (fast-server.ts) answered it (true) or connect-node's adapter did (false).
 */
export function fastPathRecorder(): { interceptor: Interceptor; taken: boolean[] } {
  const taken: boolean[] = [];
  const interceptor: Interceptor = (next) => (req) => {
    taken.push((req as UnaryRequest) instanceof FastCall);
    return next(req);
  };
  return { interceptor, taken };
}

/** A Connect JSON call made by the curl CLI: the answer and the HTTP version curl spoke. */
export async function curlCall(
  url: string,
  message: unknown,
  flags: string[] = [],
): Promise<{ body: unknown; version: string }> {
  const { stdout } = await promisify(execFile)("curl", [
    "-sS",
    ...flags,
    "-w",
    "\n%{http_version}",
    "-H",
    "content-type: application/json",
    "-d",
    JSON.stringify(message),
    url,
  ]);
  const end = stdout.lastIndexOf("\n");
  return { body: JSON.parse(stdout.slice(0, end)) as unknown, version: stdout.slice(end + 1) };
}
