// Clients to other services: Connect binary over h2c (the cheapest of the three protocols between
// our own processes), uncompressed (gzip of a 100-server list answer cost the sender more CPU than
// encoding it), carrying the request context, throwing StratusError on failure.
import type { DescService } from "@bufbuild/protobuf";
import {
  type Client,
  ConnectError,
  createClient,
  type Interceptor,
  type Transport,
} from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { writeContextHeaders } from "./context.js";
import { fromConnectError, StratusError } from "./errors.js";
import { fastUnaryEnabled, fastUnaryTransport } from "./fast-unary.js";

const contextAndErrors: Interceptor = (next) => async (req) => {
  writeContextHeaders(req.header);
  try {
    return await next(req);
  } catch (err) {
    throw fromConnectError(err);
  }
};

const transports = new Map<string, Transport>();
const DEFAULT_TIMEOUT_MS = 30_000;

/** One transport (one pooled HTTP/2 session) per base URL and process. */
export function transportFor(baseUrl: string): Transport {
  let t = transports.get(baseUrl);
  if (!t) {
    const connect = createConnectTransport({
      baseUrl,
      httpVersion: "2",
      useBinaryFormat: true,
      // No accept-encoding: the server answers uncompressed, and nothing is sent compressed.
      acceptCompression: [],
      interceptors: [contextAndErrors],
      defaultTimeoutMs: DEFAULT_TIMEOUT_MS,
    });
    // Unary calls (all the mesh makes) take the short path of fast-unary.ts.
    t = fastUnaryEnabled()
      ? fastUnaryTransport({ baseUrl, defaultTimeoutMs: DEFAULT_TIMEOUT_MS, streams: connect })
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

export function serviceClient<S extends DescService>(service: S, baseUrl: string): Client<S> {
  const client = createClient(service, transportFor(baseUrl));
  return new Proxy(client, {
    get(target, prop, receiver) {
      const value: unknown = Reflect.get(target, prop, receiver);
      if (typeof value !== "function") return value;
      return (...args: unknown[]) => {
        const result: unknown = (value as (...a: unknown[]) => unknown).apply(target, args);
        return result instanceof Promise
          ? result.catch((err: unknown) => {
              throw unwrapStratusError(err);
            })
          : result;
      };
    },
  });
}
