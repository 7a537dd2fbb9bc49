// For the runtime's own RPC tests: a server on a free port of this host, a client on the fast
// path, and the error a call was refused with.
import type http2 from "node:http2";
import type { DescService } from "@bufbuild/protobuf";
import { type Client, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport, type Http2SessionManager } from "@connectrpc/connect-node";
import type { CallAuthentication } from "../auth/rpc-authentication.js";
import { servicePrincipal } from "../context.js";
import { createLogger } from "../log.js";
import type { ServiceBinding } from "../rpc/binding.js";
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
  body: string;
}

/**
 * A Connect binary call written by hand on `session`: what the fast path receives from any
 * client. Without a body, the request is left open.
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
    let text = "";
    stream.on("response", (h) => {
      status = Number(h[":status"]);
    });
    stream.on("data", (c: Buffer) => {
      text += c.toString();
    });
    stream.on("end", () => resolve({ status, body: text }));
    stream.on("error", reject);
  });
  if (body) stream.end(body);
  return { stream, answer };
}
