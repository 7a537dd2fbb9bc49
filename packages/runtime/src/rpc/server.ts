// One port per service answering Connect, gRPC and gRPC-Web, plus grpc.health.v1 and server
// reflection, over HTTP/2 and HTTP/1.1 alike (listener.ts): h2c and HTTP/1.1 in cleartext, or
// TLS with ALPN h2 and http/1.1. Every call runs the one pipeline (pipeline.ts): its caller
// authenticated, in the caller's request context, logged, its StratusErrors leaving as
// ConnectErrors with the right code. The mesh's own unary binary Connect calls arrive over
// HTTP/2 and take the short path (fast-server.ts); connect-node's adapter answers everything
// else, on either HTTP version. GET /metrics answers the process's Prometheus metrics
// (metrics.ts), open like health: no Connect or gRPC path can be that one.
import type { Interceptor } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { Health } from "@stratus/contracts/grpc/health/v1";
import type { CallAuthentication } from "../auth/rpc-authentication.js";
import { parseConfig, rpcConfig } from "../config.js";
import type { Logger } from "../log.js";
import { metricsText } from "../metrics.js";
import type { ListenerTls } from "../tls.js";
import type { ServiceBinding } from "./binding.js";
import { type CorsPolicy, withCors } from "./cors.js";
import { fastUnaryHandler } from "./fast-server.js";
import { HealthState, ServingStatus } from "./health.js";
import { listenHttpVersions } from "./listener.js";
import { rpcPipeline } from "./pipeline.js";
import { reflectionServices } from "./reflection.js";

export interface RpcServer {
  readonly port: number;
  readonly url: string;
  readonly health: HealthState;
  close(): Promise<void>;
}

export interface RpcServerOptions {
  name: string;
  host: string;
  port: number;
  services: ServiceBinding[];
  logger: Logger;
  /** Who may call what (the pipeline's authentication stage): every call but health and reflection. */
  auth: CallAuthentication;
  /** Unary binary Connect calls take the fast path (fast-server.ts); default true. */
  fast?: boolean;
  /** Largest request body read, on every path (default: RPC_READ_MAX_BYTES's). */
  readMaxBytes?: number;
  /** Added to the pipeline after its own stages (pipeline.ts). */
  interceptors?: Interceptor[];
  /** Serve TLS only, with this certificate (tls.ts); absent: cleartext. */
  tls?: ListenerTls;
  /** Browser clients allowed (cors.ts); absent: no CORS header is sent. */
  cors?: CorsPolicy;
}

export async function startRpcServer(options: RpcServerOptions): Promise<RpcServer> {
  const { logger } = options;
  const readMaxBytes = options.readMaxBytes ?? parseConfig(rpcConfig, {}).RPC_READ_MAX_BYTES;
  const pipeline = rpcPipeline({ logger, auth: options.auth, interceptors: options.interceptors ?? [] });
  const health = new HealthState();
  const handler = connectNodeAdapter({
    grpc: true,
    grpcWeb: true,
    connect: true,
    interceptors: pipeline,
    readMaxBytes,
    routes(router) {
      for (const b of options.services) router.service(b.service, b.impl);
      router.service(Health, health.impl());
      for (const r of reflectionServices(options.services.map((b) => b.service))) {
        router.service(r.service, r.impl as never);
      }
    },
  });
  // The mesh's own unary calls take the short path; the adapter answers everything else.
  const http2Handler =
    options.fast === false
      ? handler
      : fastUnaryHandler({ services: options.services, pipeline, readMaxBytes, logger, fallback: handler });
  const { cors } = options;
  const listener = await listenHttpVersions({
    host: options.host,
    port: options.port,
    tls: options.tls,
    logger,
    http1: withMetricsEndpoint(cors ? withCors(cors, handler) : handler, logger),
    http2: withMetricsEndpoint(cors ? withCors(cors, http2Handler) : http2Handler, logger),
  });
  const { port } = listener;
  health.set("", ServingStatus.SERVING);
  for (const b of options.services) health.set(b.service.typeName, ServingStatus.SERVING);
  logger.info(
    {
      port,
      tls: options.tls !== undefined,
      cors_origins: cors?.origins,
      services: options.services.map((b) => b.service.typeName),
    },
    "rpc server listening",
  );

  return {
    port,
    url: `${options.tls ? "https" : "http"}://${options.host}:${port}`,
    health,
    async close() {
      health.setAll(ServingStatus.NOT_SERVING);
      await listener.close();
    },
  };
}

/** What answering /metrics needs of an HTTP/1.1 or HTTP/2 response. */
interface MetricsResponse {
  statusCode: number;
  setHeader(name: string, value: string): void;
  end(body?: string): void;
}

/** Answers GET /metrics with the metrics text; every other request goes to `handler`. */
function withMetricsEndpoint<Req extends { method?: string; url?: string }, Res>(
  handler: (req: Req, res: Res) => void,
  logger: Logger,
): (req: Req, res: Res) => void {
  return (req, res) => {
    if (req.url !== "/metrics" || req.method !== "GET") return handler(req, res);
    const out = res as unknown as MetricsResponse;
    metricsText().then(
      ({ contentType, body }) => {
        out.statusCode = 200;
        out.setHeader("content-type", contentType);
        out.end(body);
      },
      (err) => {
        logger.error({ err }, "metrics could not be collected");
        out.statusCode = 500;
        out.end();
      },
    );
  };
}
