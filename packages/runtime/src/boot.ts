// The common start of every service's main.ts: config, logs, signals, NATS, storage, RPC server.
import type { z } from "zod";
import { type ConfigShape, commonConfig, loadConfig, port, type storageConfig } from "./config.js";
import { Lifecycle } from "./lifecycle.js";
import { createLogger, type Logger } from "./log.js";
import { connectNats, EventBus, ensureStreams, readNkeySeedFile } from "./nats.js";
import { type ServiceRole, streamsOwnedBy } from "./nats-permissions.js";
import { type RpcServer, type ServiceBinding, startRpcServer } from "./server.js";
import { type Database, migrationsFrom, openDatabase } from "./storage.js";

type BaseConfig = z.infer<z.ZodObject<typeof commonConfig>> & { PORT: number };

export interface Booted<S extends ConfigShape> {
  config: z.infer<z.ZodObject<S>> & BaseConfig;
  logger: Logger;
  lifecycle: Lifecycle;
  bus: EventBus;
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
  const logger = createLogger(options.name, config.LOG_LEVEL);
  process.on("unhandledRejection", (err) => logger.error({ err }, "unhandled rejection"));
  const lifecycle = new Lifecycle(logger);
  lifecycle.installSignalHandlers();

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
    async serve(services) {
      const server = await startRpcServer({
        name: options.name,
        host: config.HOST,
        port: config.PORT,
        services,
        logger,
      });
      lifecycle.onShutdown("rpc server", () => server.close());
      return server;
    },
  };
}

/** Opens the service's own database (PostgreSQL or PGlite) and applies its migrations. */
export async function openServiceDatabase(
  booted: Booted<typeof storageConfig>,
  service: string,
  migrationsDir: string,
  options: { pgliteAutovacuumMs?: number } = {},
): Promise<Database> {
  const db = await openDatabase({
    service,
    url: booted.config.DATABASE_URL,
    dataDir: booted.config.STRATUS_DATA_DIR,
    migrations: migrationsFrom(migrationsDir),
    logger: booted.logger,
    ...options,
  });
  booted.lifecycle.onShutdown("database", () => db.close());
  return db;
}
