// One HTTP/2 cleartext server per service answering Connect, gRPC and gRPC-Web, plus
// grpc.health.v1 and server reflection. Every call runs the one pipeline (pipeline.ts): its caller
// authenticated, in the caller's request context, logged, its StratusErrors leaving as
// ConnectErrors with the right code.
import http2 from "node:http2";
import type { AddressInfo } from "node:net";
import type { Interceptor } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { Health } from "@stratus/contracts/grpc/health/v1";
import type { CallAuthentication } from "../auth/rpc-authentication.js";
import { parseConfig, rpcConfig } from "../config.js";
import type { Logger } from "../log.js";
import type { ServiceBinding } from "./binding.js";
import { fastUnaryHandler } from "./fast-server.js";
import { HealthState, ServingStatus } from "./health.js";
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
  const server = http2.createServer(
    options.fast === false
      ? handler
      : fastUnaryHandler({ services: options.services, pipeline, readMaxBytes, logger, fallback: handler }),
  );
  const sessions = new Set<http2.ServerHttp2Session>();
  server.on("session", (session) => {
    sessions.add(session);
    session.once("close", () => sessions.delete(session));
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port, options.host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  health.set("", ServingStatus.SERVING);
  for (const b of options.services) health.set(b.service.typeName, ServingStatus.SERVING);
  logger.info({ port, services: options.services.map((b) => b.service.typeName) }, "rpc server listening");

  return {
    port,
    url: `http://${options.host}:${port}`,
    health,
    async close() {
      health.setAll(ServingStatus.NOT_SERVING);
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const s of sessions) s.close();
      // Pooled clients may hold sessions open; do not wait for them forever.
      const timer = setTimeout(() => {
        for (const s of sessions) s.destroy();
      }, 2000);
      await closed;
      clearTimeout(timer);
    },
  };
}
