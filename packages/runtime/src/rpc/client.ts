// Clients to other services: Connect binary over HTTP/2 (the cheapest of the three protocols
// between our own processes; h2c, or TLS for an https:// peer), uncompressed (encoding a large
// answer cost the sender more CPU than it saved), carrying the request id and this process's
// credential (auth/caller-credential.ts), throwing StratusError on failure.
import type { DescService } from "@bufbuild/protobuf";
import {
  type Client,
  ConnectError,
  createClient,
  type Interceptor,
  type Transport,
} from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import type { z } from "zod";
import { callerCredentialFor, writeCallerHeaders } from "../auth/caller-credential.js";
import { parseConfig, peerUrls, rpcConfig, tlsConfig } from "../config.js";
import { writeNotAfter, writeRequestId } from "../context.js";
import { fromConnectError, isStratusError, StratusError } from "../errors.js";
import { ServiceUnavailable } from "../http/faults.js";
import { peerCa } from "../tls.js";
import { writeTraceContext } from "../tracing.js";
import { fastUnaryTransport } from "./fast-client.js";
import { peerSessionManager } from "./session-manager.js";

/** Writes the caller's credential headers of a call to baseUrl (caller-credential.ts). */
function callerHeadersFor(baseUrl: string) {
  return (headers: { set(name: string, value: string): void }) =>
    writeCallerHeaders(headers, callerCredentialFor(baseUrl));
}

function contextAndErrors(baseUrl: string): Interceptor {
  const callerHeaders = callerHeadersFor(baseUrl);
  return (next) => async (req) => {
    writeRequestId(req.header);
    writeNotAfter(req.header);
    writeTraceContext(req.header);
    callerHeaders(req.header);
    try {
      return await next(req);
    } catch (err) {
      throw fromConnectError(err);
    }
  };
}

/** How a service calls its peers: the RPC settings, and the CA https:// peers are verified with. */
export type PeerSettings = z.infer<z.ZodObject<typeof rpcConfig>> & {
  /** PEM CA certificates (TLS_CA_FILE); undefined: Node's bundled CAs. */
  ca?: Buffer;
};

const transports = new Map<string, Transport>();

/**
 * One transport (one HTTP/2 connection, kept by one session manager) per base URL and process,
 * made with the settings of the environment (config.ts: rpcConfig, tlsConfig) when first asked for.
 */
export function transportFor(baseUrl: string): Transport {
  let t = transports.get(baseUrl);
  if (!t) {
    const settings = parseConfig({ ...rpcConfig, ...tlsConfig });
    t = peerTransport(baseUrl, { ...settings, ca: peerCa(settings) });
    transports.set(baseUrl, t);
  }
  return t;
}

/**
 * A transport to the peer at `baseUrl`: h2c for http://, TLS (ALPN h2) for https://, verifying the
 * peer's certificate against `settings.ca` and its name or address against the URL's host.
 */
export function peerTransport(baseUrl: string, settings: PeerSettings): Transport {
  const tls = new URL(baseUrl).protocol === "https:" && settings.ca ? { ca: settings.ca } : undefined;
  const sessionManager = peerSessionManager(
    baseUrl,
    { pingIntervalMs: settings.RPC_PING_INTERVAL_MS, idleConnectionTimeoutMs: settings.RPC_IDLE_TIMEOUT_MS },
    tls,
  );
  const defaultTimeoutMs = settings.RPC_TIMEOUT_MS;
  const connect = createConnectTransport({
    baseUrl,
    httpVersion: "2",
    sessionManager,
    useBinaryFormat: true,
    // No accept-encoding: the server answers uncompressed, and nothing is sent compressed.
    acceptCompression: [],
    interceptors: [contextAndErrors(baseUrl)],
    ...(defaultTimeoutMs > 0 ? { defaultTimeoutMs } : {}),
  });
  // Unary calls (all the mesh makes) take the short path of fast-client.ts.
  return settings.STRATUS_RPC_FAST === "1"
    ? fastUnaryTransport({
        baseUrl,
        defaultTimeoutMs,
        streams: connect,
        sessionManager,
        callerHeaders: callerHeadersFor(baseUrl),
      })
    : connect;
}

/**
 * connect-es wraps whatever an interceptor throws in a ConnectError (code Unknown, the original as
 * its cause); unwrap it so that callers really get the StratusError with the sender's kind.
 */
function unwrapStratusError(err: unknown): unknown {
  if (err instanceof StratusError) return err;
  if (err instanceof ConnectError && err.cause instanceof StratusError) return err.cause;
  return fromConnectError(err);
}

/** The errors that say a connection could not be made at all (nothing was sent on it). */
const NOT_CONNECTED = new Set(["ECONNREFUSED", "EHOSTUNREACH", "ENETUNREACH", "ENOTFOUND", "EAI_AGAIN"]);

/**
 * Whether a call surely never reached its peer: the connection could not be made (refused, no
 * route, unknown name), as its error or a cause of it says. Only such a call may go to another
 * replica: after any other failure the peer may have acted on it.
 */
export function neverSent(err: unknown): boolean {
  let e: unknown = err;
  for (let depth = 0; e && depth < 8; depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === "string" && NOT_CONNECTED.has(code)) return true;
    e = (e as { cause?: unknown }).cause;
  }
  return false;
}

/** How long calls keep to the replica that answered when the preferred one could not be reached. */
const FALLBACK_MS = 5_000;

/**
 * A client of the service at `baseUrl`, or of its replicas (`peerUrls`: comma-separated, the first
 * preferred). A unary call that could not reach a replica (neverSent) goes to the next one, and
 * calls keep to the one that answered for a few seconds before trying the first again; streams
 * go to the replica calls currently keep to. Without a load balancer in front of a peer's
 * replicas (the one-machine cluster, a small deployment), this is what keeps a dead replica from
 * failing its callers' calls.
 *
 * With `peer` (the kind of service as a client of ours knows it: "compute", "network"), a call
 * that finds it unavailable fails as a ServiceUnavailable naming that kind, whose message a REST
 * edge may show (the transport's error stays its cause). A call the callee refuses as
 * unauthenticated (the process's token revoked or expired early) is made once more after the
 * credential has logged in again: the refusal came before the callee did anything.
 */
export function serviceClient<S extends DescService>(
  service: S,
  baseUrl: string,
  options: { peer?: string } = {},
): Client<S> {
  const urls = peerUrls(baseUrl);
  if (urls.length <= 1) return replicaClient(service, urls[0] ?? baseUrl, options);
  const clients = urls.map((u) => replicaClient(service, u, options));
  let fallback = { index: 0, until: 0 };
  const current = () => (fallback.until > Date.now() ? fallback.index : 0);
  const unary = new Set(
    service.methods.filter((m) => m.methodKind === "unary").map((m) => m.localName as string),
  );
  return new Proxy(clients[0]!, {
    get(_target, prop) {
      const name = String(prop);
      if (!unary.has(name)) return Reflect.get(clients[current()]!, prop);
      return async (...args: unknown[]) => {
        const first = current();
        for (let tried = 0; ; tried++) {
          const i = (first + tried) % clients.length;
          try {
            const out: unknown = await (clients[i] as Record<string, (...a: unknown[]) => unknown>)[name]!(
              ...args,
            );
            // Failed over: keep to this one for a while, then try the first again.
            if (tried > 0) fallback = { index: i, until: Date.now() + FALLBACK_MS };
            return out;
          } catch (err) {
            if (tried + 1 < clients.length && neverSent(err)) continue;
            throw err;
          }
        }
      };
    },
  });
}

/** A client of one replica (serviceClient). */
function replicaClient<S extends DescService>(
  service: S,
  baseUrl: string,
  options: { peer?: string },
): Client<S> {
  const client = createClient(service, transportFor(baseUrl));
  const { peer } = options;
  const failure = (err: unknown) => {
    const e = unwrapStratusError(err);
    return peer && isStratusError(e, "unavailable") && !(e instanceof ServiceUnavailable)
      ? new ServiceUnavailable(peer, { cause: e })
      : e;
  };
  return new Proxy(client, {
    get(target, prop, receiver) {
      const value: unknown = Reflect.get(target, prop, receiver);
      if (typeof value !== "function") return value;
      const call = (args: unknown[]): unknown => (value as (...a: unknown[]) => unknown).apply(target, args);
      return (...args: unknown[]) => {
        const credential = callerCredentialFor(baseUrl);
        const token = credential?.token();
        const result = call(args);
        if (!(result instanceof Promise)) return result;
        return result.catch(async (err: unknown) => {
          const e = failure(err);
          if (!credential || !isStratusError(e, "unauthorized")) throw e;
          await credential.renew(token);
          return (call(args) as Promise<unknown>).catch((again: unknown) => {
            throw failure(again);
          });
        });
      };
    },
  });
}
