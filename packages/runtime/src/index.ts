export * from "./boot.js";
export * from "./client.js";
export * from "./config.js";
export * from "./context.js";
export * from "./errors.js";
export * from "./health.js";
export * from "./lifecycle.js";
export * from "./log.js";
export * from "./nats.js";
export {
  NATS_ROLES,
  type NatsPermissions,
  type NatsRole,
  natsPermissions,
  SERVICE_ROLES,
  type ServiceRole,
  streamsOwnedBy,
} from "./nats-permissions.js";
export * from "./server.js";
export * from "./storage.js";
export * from "./turn-batcher.js";
