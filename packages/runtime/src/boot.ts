// The common start of every service's main.ts: config, logs, signals, NATS, storage, RPC server.
import type { z } from "zod";
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

type BaseConfig = z.infer<z.ZodObject<typeof commonConfig>> & { PORT: number };

export interface Booted<S extends ConfigShape> {
  config: z.infer<z.ZodObject<S>> & BaseConfig;
  logger: Logger;
  lifecycle: Lifecycle;
  bus: EventBus;
  /** The certificate the service's listeners present (TLS_CERT_FILE, TLS_KEY_FILE); unset: cleartext. */
  tls: ListenerTls | undefined;
  serve(services: ServiceBinding[]): Promise<RpcServer>;
}

export async function bootService<S extends ConfigShape>(options: {
  /** Also the service's role on NATS (nats-permissions.ts). */
  name: ServiceRole;
  defaultPort: number;
  config: S;
}): Promise<Booted<S>> {
  const shape = { ...commonConfig, PORT: port(options.defaultPort).describe("RPC port"), ...options.config };
  const config = loadConfig(options.name, shape) as unknown as z.infer<z.ZodObject<S>> & BaseConfig;
  // TLS files that cannot be used stop the service here, naming the variable, not at a first call.
  const tls = stopOnConfigError(options.name, () => {
    peerCa(config);
    return listenerTls(config);
  });
  const logger = createLogger(options.name, config.LOG_LEVEL);
  process.on("unhandledRejection", (err) => logger.error({ err }, "unhandled rejection"));
  const lifecycle = new Lifecycle(logger);
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
  await ensureStreams(nc, streamsOwnedBy(options.name));

  return {
    config,
    logger,
    lifecycle,
    bus,
    tls,
    async serve(services) {
      const server = await startRpcServer({
        name: options.name,
        host: config.HOST,
        port: config.PORT,
        services,
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
