// One HTTP/2 cleartext server per service answering Connect, gRPC and gRPC-Web, plus
// grpc.health.v1 and server reflection. Handlers run inside the caller's request context and
// their StratusErrors leave as ConnectErrors with the right code.
import http2 from "node:http2";
import type { AddressInfo } from "node:net";
import type { DescService } from "@bufbuild/protobuf";
import { Code, ConnectError, type Interceptor, type ServiceImpl } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { Health } from "@stratus/contracts/grpc/health/v1";
import { readContextHeaders, runWithContext } from "./context.js";
import { fastUnaryEnabled, fastUnaryHandler, rpcFailed } from "./fast-unary.js";
import { HealthState, ServingStatus } from "./health.js";
import type { Logger } from "./log.js";
import { reflectionServices } from "./reflection.js";

export interface ServiceBinding {
  service: DescService;
  impl: Partial<ServiceImpl<DescService>>;
}

/** Pairs a service with its (possibly partial) implementation; missing RPCs answer Unimplemented. */
export function bindService<S extends DescService>(
  service: S,
  impl: Partial<ServiceImpl<S>>,
): ServiceBinding {
  return { service, impl: impl as Partial<ServiceImpl<DescService>> };
}

export interface RpcServer {
  readonly port: number;
  readonly url: string;
  readonly health: HealthState;
  close(): Promise<void>;
}

function contextInterceptor(logger: Logger): Interceptor {
  return (next) => async (req) => {
    const ctx = readContextHeaders(req.header);
    return runWithContext(ctx, async () => {
      const started = performance.now();
      try {
        const res = await next(req);
        logger.debug({ rpc: req.url, ms: +(performance.now() - started).toFixed(2) }, "rpc ok");
        return res;
      } catch (err) {
        throw rpcFailed(logger, req.url, started, err);
      }
    });
  };
}

export async function startRpcServer(options: {
  name: string;
  host: string;
  port: number;
  services: ServiceBinding[];
  logger: Logger;
}): Promise<RpcServer> {
  const { logger } = options;
  const health = new HealthState();
  const handler = connectNodeAdapter({
    grpc: true,
    grpcWeb: true,
    connect: true,
    interceptors: [contextInterceptor(logger)],
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
    fastUnaryEnabled() ? fastUnaryHandler(options.services, logger, handler) : handler,
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

export { Code, ConnectError };
