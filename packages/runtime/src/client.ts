// Clients to other services: Connect binary over h2c (the cheapest of the three protocols between
// our own processes), carrying the request context, throwing StratusError on failure.
import type { DescService } from "@bufbuild/protobuf";
import { type Client, createClient, type Interceptor, type Transport } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { writeContextHeaders } from "./context.js";
import { fromConnectError } from "./errors.js";

const contextAndErrors: Interceptor = (next) => async (req) => {
  writeContextHeaders(req.header);
  try {
    return await next(req);
  } catch (err) {
    throw fromConnectError(err);
  }
};

const transports = new Map<string, Transport>();

/** One transport (one pooled HTTP/2 session) per base URL and process. */
export function transportFor(baseUrl: string): Transport {
  let t = transports.get(baseUrl);
  if (!t) {
    t = createConnectTransport({
      baseUrl,
      httpVersion: "2",
      useBinaryFormat: true,
      interceptors: [contextAndErrors],
      defaultTimeoutMs: 30_000,
    });
    transports.set(baseUrl, t);
  }
  return t;
}

export function serviceClient<S extends DescService>(service: S, baseUrl: string): Client<S> {
  return createClient(service, transportFor(baseUrl));
}
