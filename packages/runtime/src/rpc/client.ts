// Clients to other services: Connect binary over h2c (the cheapest of the three protocols between
// our own processes), uncompressed (encoding a large answer cost the sender more CPU than it
// saved), carrying the request id and this process's credential (auth/caller-credential.ts),
// throwing StratusError on failure.
import type { DescService } from "@bufbuild/protobuf";
import {
  type Client,
  ConnectError,
  createClient,
  type Interceptor,
  type Transport,
} from "@connectrpc/connect";
import { createConnectTransport, Http2SessionManager } from "@connectrpc/connect-node";
import { callerCredentialFor, writeCallerHeaders } from "../auth/caller-credential.js";
import { parseConfig, rpcConfig } from "../config.js";
import { writeRequestId } from "../context.js";
import { fromConnectError, isStratusError, StratusError } from "../errors.js";
import { fastUnaryTransport } from "./fast-client.js";

/** Writes the caller's credential headers of a call to baseUrl (caller-credential.ts). */
function callerHeadersFor(baseUrl: string) {
  return (headers: { set(name: string, value: string): void }) =>
    writeCallerHeaders(headers, callerCredentialFor(baseUrl));
}

function contextAndErrors(baseUrl: string): Interceptor {
  const callerHeaders = callerHeadersFor(baseUrl);
  return (next) => async (req) => {
    writeRequestId(req.header);
    callerHeaders(req.header);
    try {
      return await next(req);
    } catch (err) {
      throw fromConnectError(err);
    }
  };
}

const transports = new Map<string, Transport>();

/**
 * One transport (one HTTP/2 connection, kept by one session manager) per base URL and process,
 * made with the RPC settings of the environment (config.ts, rpcConfig) when first asked for.
 */
export function transportFor(baseUrl: string): Transport {
  let t = transports.get(baseUrl);
  if (!t) {
    const settings = parseConfig(rpcConfig);
    const sessionManager = new Http2SessionManager(baseUrl, {
      pingIntervalMs: settings.RPC_PING_INTERVAL_MS,
      idleConnectionTimeoutMs: settings.RPC_IDLE_TIMEOUT_MS,
    });
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
    t =
      settings.STRATUS_RPC_FAST === "1"
        ? fastUnaryTransport({
            baseUrl,
            defaultTimeoutMs,
            streams: connect,
            sessionManager,
            callerHeaders: callerHeadersFor(baseUrl),
          })
        : connect;
    transports.set(baseUrl, t);
  }
  return t;
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

/**
 * A client of the service at baseUrl. A call the callee refuses as unauthenticated (the process's
 * token revoked or expired early) is made once more after the credential has logged in again: the
 * refusal came before the callee did anything.
 */
export function serviceClient<S extends DescService>(service: S, baseUrl: string): Client<S> {
  const client = createClient(service, transportFor(baseUrl));
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
          const failure = unwrapStratusError(err);
          if (!credential || !isStratusError(failure, "unauthorized")) throw failure;
          await credential.renew(token);
          return (call(args) as Promise<unknown>).catch((again: unknown) => {
            throw unwrapStratusError(again);
          });
        });
      };
    },
  });
}
