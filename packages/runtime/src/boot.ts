// The common start of every service's main.ts: config, logs, signals, NATS, the service's
// authentication in the mesh (its own credential, the validator of its callers), storage, RPC
// server.
import type { z } from "zod";
import type { TokenValidator } from "./auth/identity.js";
import { checkPolicies, type ServicePolicy } from "./auth/method-policy.js";
import { RpcAuthentication } from "./auth/rpc-authentication.js";
import { serviceAuthConfig, serviceAuthMode, startServiceAuth } from "./auth/service-auth.js";
import {
  type ConfigShape,
  commonConfig,
  loadConfig,
  port,
  stopOnConfigError,
  type storageConfig,
} from "./config.js";
import { Lifecycle } from "./lifecycle.js";
import { createLogger, type Logger } from "./log.js";
import { startMetrics } from "./metrics.js";
import { connectNats, EventBus, ensureStreams, readNkeySeedFile } from "./nats.js";
import { streamsOwnedBy } from "./nats-permissions.js";
import type { ServiceRole } from "./nats-subjects.js";
import type { ServiceBinding } from "./rpc/binding.js";
import { corsPolicy } from "./rpc/cors.js";
import { type RpcServer, startRpcServer } from "./rpc/server.js";
import type { Database } from "./storage/database.js";
import { migrationsFrom } from "./storage/migrate.js";
import { openDatabase } from "./storage/open.js";
import { type ListenerTls, listenerTls, peerCa } from "./tls.js";
import { startTracing, stopTracing } from "./tracing.js";

type BaseConfig = z.infer<z.ZodObject<typeof commonConfig>> & { PORT: number };

export interface ServeOptions {
  /** The policy of every RPC of every bound service (auth/method-policy.ts). */
  policies: ServicePolicy[];
  /** The identity service only (`issuesTokens`): the validator of its own tokens. */
  validator?: TokenValidator;
}

export interface Booted<S extends ConfigShape> {
  config: z.infer<z.ZodObject<S>> & BaseConfig;
  logger: Logger;
  lifecycle: Lifecycle;
  bus: EventBus;
  /** The certificate the service's listeners present (TLS_CERT_FILE, TLS_KEY_FILE); unset: cleartext. */
  tls: ListenerTls | undefined;
  /**
   * Answers `services` on the RPC port, every call authenticated with the service's validator
   * and checked against `policies`. Refuses to start when a bound service has a method without
   * a policy.
   */
  serve(services: ServiceBinding[], options: ServeOptions): Promise<RpcServer>;
}

export async function bootService<S extends ConfigShape>(options: {
  /** Also the service's role on NATS (nats-permissions.ts) and its service user (stratus-<name>). */
  name: ServiceRole;
  defaultPort: number;
  config: S;
  /**
   * The identity service: it validates tokens with its own keys (serve's validator) and calls no
   * other service, so it logs in nowhere. Every other service logs in here (auth/service-auth.ts).
   */
  issuesTokens?: boolean;
}): Promise<Booted<S>> {
  const authShape = options.issuesTokens ? {} : serviceAuthConfig;
  const shape = {
    ...commonConfig,
    ...authShape,
    PORT: port(options.defaultPort).describe("RPC port"),
    ...options.config,
  };
  const config = loadConfig(options.name, shape, (c) =>
    options.issuesTokens ? undefined : serviceAuthMode(c as never, options.name),
  ) as unknown as z.infer<z.ZodObject<S>> & BaseConfig;
  // TLS files that cannot be used stop the service here, naming the variable, not at a first call.
  const tls = stopOnConfigError(options.name, () => {
    peerCa(config);
    return listenerTls(config);
  });
  const logger = createLogger(options.name, config.LOG_LEVEL);
  startMetrics(options.name);
  process.on("unhandledRejection", (err) => logger.error({ err }, "unhandled rejection"));
  const lifecycle = new Lifecycle(logger);
  await startTracing(options.name, config.OTEL_EXPORTER_OTLP_ENDPOINT, config.OTEL_BSP_SCHEDULE_DELAY);
  lifecycle.onShutdown("tracing", stopTracing);
  lifecycle.installSignalHandlers(config.STRATUS_EXIT_WITH_PARENT);

  const seedFile = config.NATS_NKEY_SEED_FILE;
  const seed = seedFile ? readNkeySeedFile(seedFile) : undefined;
  const nc = await connectNats({
    url: config.NATS_URL,
    name: options.name,
    role: options.name,
    seed,
    logger,
  });
  const bus = new EventBus(nc, logger);
  lifecycle.onShutdown("nats", () => bus.close());
  await ensureStreams(nc, streamsOwnedBy(options.name), { replicas: config.NATS_STREAM_REPLICAS });

  const auth = options.issuesTokens
    ? undefined
    : await startServiceAuth({
        service: options.name,
        mode: serviceAuthMode(config as never, options.name),
        bus,
        logger,
      });
  if (auth) lifecycle.onShutdown("authentication", () => auth.close());

  return {
    config,
    logger,
    lifecycle,
    bus,
    tls,
    async serve(services, serveOptions) {
      const validator = serveOptions.validator ?? auth?.validator;
      if (!validator) throw new Error(`${options.name}: serve() needs the validator of its own tokens`);
      checkPolicies(
        services.map((b) => b.service),
        serveOptions.policies,
      );
      const server = await startRpcServer({
        name: options.name,
        host: config.HOST,
        port: config.PORT,
        services,
        auth: new RpcAuthentication(validator, serveOptions.policies),
        logger,
        fast: config.STRATUS_RPC_FAST === "1",
        readMaxBytes: config.RPC_READ_MAX_BYTES,
        tls,
        cors: corsPolicy(config),
      });
      lifecycle.onShutdown("rpc server", () => server.close());
      return server;
    },
  };
}

/**
 * Opens the service's own database (PostgreSQL or PGlite) as its storage settings say, and
 * applies its migrations.
 */
export async function openServiceDatabase(
  booted: Booted<typeof storageConfig>,
  service: string,
  migrationsDir: string,
): Promise<Database> {
  const { config } = booted;
  const db = await openDatabase({
    service,
    url: config.DATABASE_URL,
    dataDir: config.STRATUS_DATA_DIR,
    migrations: migrationsFrom(migrationsDir),
    logger: booted.logger,
    poolSize: config.DB_POOL_SIZE,
    preparedStatements: config.DB_PREPARED_STATEMENTS,
    statisticsMs: config.DB_STATISTICS_MS,
    analyzeGrowth: config.DB_ANALYZE_GROWTH,
  });
  booted.lifecycle.onShutdown("database", () => db.close());
  return db;
}
