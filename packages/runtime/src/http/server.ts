// The HTTP/1.1 server under a REST edge (HTTPS when the service has a certificate): keep-alive, a
// handler that never leaves a request unanswered, malformed requests closed with a 400, and
// answers written as JSON.
import http, { type IncomingMessage, type ServerResponse } from "node:http";
import https from "node:https";
import type { Logger } from "../log.js";
import { restServerDuration } from "../metrics.js";
import type { ListenerTls } from "../tls.js";
import { inSpan, SpanKind } from "../tracing.js";
import { header } from "./request.js";

export type RestServer = http.Server | https.Server;

/** Methods that get a series of their own; any other a client sends counts as "other". */
const METHODS = new Set(["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]);

export interface RestResponse {
  status: number;
  body?: unknown;
  /** The body already serialized as JSON (instead of `body`). */
  json?: Buffer;
  headers?: Record<string, string>;
  /**
   * A body written as it comes (Server-Sent Events) instead of `body`: called once status and
   * headers are sent; it ends the response itself. Whatever it throws ends the connection.
   */
  stream?: (res: ServerResponse) => Promise<void>;
}

/**
 * The server of a REST edge; with `tls` (the service's certificate, tls.ts) it serves HTTPS only.
 * Every request is timed into stratus_rest_request_duration_seconds under `edge` (metrics.ts).
 */
export function createHttpServer(
  logger: Logger,
  tls: ListenerTls | undefined,
  handle: (req: IncomingMessage, res: ServerResponse) => Promise<void>,
  edge = "rest",
): RestServer {
  const listener = (req: IncomingMessage, res: ServerResponse) => {
    const started = performance.now();
    res.once("finish", () => {
      restServerDuration.observe(
        {
          edge,
          method: METHODS.has(req.method ?? "") ? req.method : "other",
          status: String(res.statusCode),
        },
        (performance.now() - started) / 1000,
      );
    });
    inSpan(
      `${req.method ?? "GET"} ${edge}`,
      SpanKind.SERVER,
      { get: (name) => header(req, name) },
      { "http.request.method": req.method ?? "", "stratus.edge": edge },
      () => handle(req, res),
    ).catch((err) => {
      logger.error({ err }, "rest handler crashed");
      if (!res.headersSent) {
        res.statusCode = 500;
        res.end();
      }
    });
  };
  const options = { keepAliveTimeout: 30_000 };
  const server = tls
    ? https.createServer({ ...options, ...tls }, listener)
    : http.createServer(options, listener);
  server.on("clientError", (_err, socket) => {
    if (socket.writable) socket.end("HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n");
  });
  return server;
}

/** Writes a response: headers, status, and the body as JSON (none for a 204 or when there is none). */
export function sendResponse(res: ServerResponse, result: RestResponse): void {
  for (const [k, v] of Object.entries(result.headers ?? {})) res.setHeader(k, v);
  res.statusCode = result.status;
  if (result.stream) {
    res.flushHeaders();
    result.stream(res).catch(() => res.destroy());
    return;
  }
  if (result.json !== undefined) {
    res.setHeader("content-type", "application/json");
    res.setHeader("content-length", result.json.length);
    res.end(result.json);
    return;
  }
  if (result.body === undefined || result.status === 204) {
    res.end();
    return;
  }
  const payload = JSON.stringify(result.body);
  res.setHeader("content-type", "application/json");
  res.setHeader("content-length", Buffer.byteLength(payload));
  res.end(payload);
}

/** Listens, and closes on shutdown without waiting for idle keep-alive connections. */
export async function listenHttp(server: RestServer, port: number, host: string): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      server.off("error", reject);
      resolve();
    });
  });
}

export function closeHttp(server: RestServer): Promise<void> {
  return new Promise<void>((resolve) => {
    server.close(() => resolve());
    server.closeIdleConnections();
  });
}
