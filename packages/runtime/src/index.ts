// @stratus/runtime: what every Stratus service is made of. The names services, tests and
// benchmarks use, and nothing else; the test harness is "@stratus/runtime/testing".

export { allow, type MethodPolicy, type ServicePolicy, servicePolicy } from "./auth/method-policy.js";
export { bootService, openServiceDatabase } from "./boot.js";
export {
  ConfigError,
  DATABASE_POOLS,
  type DatabaseService,
  peerUrl,
  storageConfig,
  storageSettings,
} from "./config.js";
export {
  acceptRequestId,
  currentContext,
  defaultRoles,
  newRequestId,
  type Principal,
  REQUEST_ID_HEADER,
  type RequestContext,
  runWithContext,
  systemContext,
  userContext,
} from "./context.js";
export {
  conflict,
  invalidInput,
  isStratusError,
  notFound,
  novaFault,
  StratusError,
  toConnectError,
} from "./errors.js";
export { createLogger, type Logger } from "./log.js";
export { LATENCY_BUCKETS, metricsRegistry, registerQueryGauge } from "./metrics.js";
export { connectNats, type DurableConsumer, EventBus, ensureStreams, readNkeySeedFile } from "./nats.js";
export { type NatsPermissions, natsPermissions, streamsOwnedBy } from "./nats-permissions.js";
export {
  instancesOf,
  NATS_ROLES,
  type NatsRole,
  SERVICE_ROLES,
  type ServiceRole,
  type StreamFamily,
  Streams,
  Subjects,
} from "./nats-subjects.js";
export { bindService, type ServiceBinding } from "./rpc/binding.js";
export { serviceClient } from "./rpc/client.js";
export { isStorableText, unstorableText } from "./storable-text.js";
export { columnList, tableColumns } from "./storage/columns.js";
export type { Database, Queryable, QueryOptions, Row } from "./storage/database.js";
export { migrationsFrom } from "./storage/migrate.js";
export { openDatabase } from "./storage/open.js";
export type { ListenerTls } from "./tls.js";
export { inSpan, SpanKind, tracingEnabled } from "./tracing.js";
export { TurnBatcher } from "./turn-batcher.js";
