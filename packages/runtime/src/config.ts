// Configuration from environment variables, declared once with zod: name, type, default and a
// one-line help (the schema's description). `--help` prints the list.
import { z } from "zod";
import { readNkeySeedFile } from "./nats.js";

export type ConfigShape = Record<string, z.ZodType>;

export class ConfigError extends Error {
  override readonly name = "ConfigError";
}

const count = (fallback: number, min = 0) => z.coerce.number().int().min(min).default(fallback);

/** A comma-separated list whose every entry passes `valid` (unset: empty). */
const list = (what: string, valid: (entry: string) => boolean) =>
  z
    .string()
    .optional()
    .transform((v) =>
      (v ?? "")
        .split(",")
        .map((s) => s.trim())
        .filter(Boolean),
    )
    .refine((entries) => entries.every(valid), `each entry must be ${what}`);

const isOrigin = (entry: string) => {
  if (entry === "*") return true;
  try {
    return new URL(entry).origin === entry;
  } catch {
    return false;
  }
};

const isHeaderName = (entry: string) => /^[A-Za-z0-9!#$%&'*+.^_`|~-]+$/.test(entry);

/** The bounds of the RPC pipeline's input stage (rpc/input-validation.ts). */
export const rpcInputConfig = {
  RPC_MAX_STRING_LENGTH: count(65_536, 1).describe(
    "Longest string (UTF-16 code units) an RPC request may carry in any field; a longer one is refused with InvalidArgument",
  ),
  RPC_MAX_ENTRIES: count(10_000, 1).describe(
    "Most entries a repeated field or map of an RPC request may carry; more are refused with InvalidArgument",
  ),
};

/** How a service answers RPCs and calls its peers (rpc/); every service has these. */
export const rpcConfig = {
  ...rpcInputConfig,
  STRATUS_RPC_FAST: z
    .enum(["0", "1"])
    .default("1")
    .describe(
      "1: unary binary Connect calls between our services take the short path on both ends; 0: connect-es sends and connect-node answers every call (to compare, or to rule the short path out)",
    ),
  RPC_TIMEOUT_MS: count(30_000).describe("Deadline of an outgoing RPC whose caller gives none (0: none)"),
  RPC_READ_MAX_BYTES: count(4 * 1024 * 1024, 1).describe(
    "Largest request body an RPC server reads (every protocol); a larger one is refused with ResourceExhausted, unread",
  ),
  RPC_PING_INTERVAL_MS: count(30_000, 1).describe(
    "Outgoing HTTP/2 connections: PING after this long without a frame from the peer while calls are open, and before a call after such a silence; a peer that does not answer within 15 s is dropped",
  ),
  RPC_IDLE_TIMEOUT_MS: count(900_000, 1).describe(
    "An outgoing HTTP/2 connection without calls for this long is closed",
  ),
  RPC_CORS_ORIGINS: list("an origin (scheme://host[:port]) or *", isOrigin).describe(
    "Origins whose browser scripts may call the RPC port (Connect, gRPC-Web), comma-separated, * for any; unset: no CORS headers, preflights not answered",
  ),
  RPC_CORS_HEADERS: list("a header name", isHeaderName).describe(
    "Request headers a browser may send besides Connect's, gRPC-Web's, x-openstack-request-id, x-auth-token and authorization (comma-separated)",
  ),
  RPC_CORS_EXPOSE_HEADERS: list("a header name", isHeaderName).describe(
    "Response headers a browser script may read besides Connect's and gRPC-Web's, x-openstack-request-id and x-stratus-error-kind (comma-separated)",
  ),
  RPC_CORS_MAX_AGE_S: count(7200).describe("How long a browser may keep a CORS preflight's answer, seconds"),
};

/** TLS for a service's listeners (RPC and REST) and for its RPC clients (tls.ts reads the files). */
export const tlsConfig = {
  TLS_CERT_FILE: z
    .string()
    .optional()
    .describe(
      "PEM certificate (chain) of this service; with TLS_KEY_FILE its listeners serve TLS only: RPC over HTTP/2 (ALPN h2) or HTTP/1.1, REST over HTTPS. Unset: cleartext",
    ),
  TLS_KEY_FILE: z.string().optional().describe("PEM private key of TLS_CERT_FILE"),
  TLS_CA_FILE: z
    .string()
    .optional()
    .describe(
      "PEM CA certificate(s) the certificate of an https:// peer must chain to; unset: Node's bundled CAs",
    ),
};

/** An optional file setting: a path `read` accepts (what `read` throws is the variable's problem). */
export function fileSetting(read: (path: string) => unknown) {
  return z
    .string()
    .optional()
    .superRefine((path, ctx) => {
      if (path === undefined) return;
      try {
        read(path);
      } catch (err) {
        ctx.addIssue({ code: "custom", message: (err as Error).message });
      }
    });
}

/** A peer's URLs as configured: one, or its replicas' comma-separated (the first preferred). */
export function peerUrls(value: string): string[] {
  return value
    .split(",")
    .map((u) => u.trim())
    .filter((u) => u.length > 0);
}

/**
 * A peer's RPC URL setting: one http(s) URL, or its replicas' comma-separated, which serviceClient
 * tries in order when one cannot be reached (rpc/client.ts).
 */
export const peerUrl = z.string().refine((v) => {
  const urls = peerUrls(v);
  return (
    urls.length > 0 && urls.every((u) => URL.canParse(u) && ["http:", "https:"].includes(new URL(u).protocol))
  );
}, "an http(s) URL, or several comma-separated");

/** Variables every service shares. */
export const commonConfig = {
  NATS_URL: z.string().default("nats://127.0.0.1:4222").describe("NATS server URL(s), comma-separated"),
  NATS_NKEY_SEED_FILE: fileSetting(readNkeySeedFile).describe(
    "File with this service's NATS nkey seed (npm start: .stratus/nats/credentials/<service>.nk); unset: anonymous",
  ),
  OTEL_EXPORTER_OTLP_ENDPOINT: z
    .url({ protocol: /^https?$/ })
    .optional()
    .describe(
      "OpenTelemetry: the OTLP/HTTP collector spans are sent to (<url>/v1/traces), W3C traceparent on every REST, RPC and NATS hop; unset: tracing off",
    ),
  OTEL_BSP_SCHEDULE_DELAY: count(5000, 1).describe("OpenTelemetry: how often buffered spans are sent, ms"),
  NATS_STREAM_REPLICAS: z.coerce
    .number()
    .int()
    .min(1)
    .max(5)
    .default(1)
    .describe(
      "Copies of each JetStream stream a service creates (3 on a 3-node cluster); an existing stream is never given fewer",
    ),
  LOG_LEVEL: z
    .enum(["trace", "debug", "info", "warn", "error", "fatal", "silent"])
    .default("info")
    .describe("Log level"),
  HOST: z.string().default("127.0.0.1").describe("Address to listen on"),
  ...rpcConfig,
  ...tlsConfig,
  STRATUS_EXIT_WITH_PARENT: z.coerce
    .number()
    .int()
    .min(1)
    .optional()
    .describe("Set by the test harness: shut down when the process with this id is gone"),
};

export const port = (fallback: number) => z.coerce.number().int().min(0).max(65535).default(fallback);

/**
 * Each service's default database pools (DB_POOL_SIZE, DB_GENERIC_POOL_SIZE), made to fit one
 * PostgreSQL at its default max_connections = 100 with two replicas of every service and two
 * compute agents on it: 2 x (12 + 4 + 8 + 4 + 10 + 4 + 3) = 90 of the 97 left after
 * superuser_reserved_connections (3), 7 to spare for an operator's session and migrations run by
 * hand (docs/architecture.md, "Database connections"). A service's peak: its pools full, nothing
 * else (maintenance and migrations use the main pool).
 */
export const DATABASE_POOLS = {
  conductor: { pool: 12, generic: 4 },
  scheduler: { pool: 8, generic: 4 },
  "network-adapter": { pool: 10, generic: 0 },
  identity: { pool: 4, generic: 0 },
  "compute-agent": { pool: 3, generic: 0 },
} as const satisfies Record<string, { pool: number; generic: number }>;
export type DatabaseService = keyof typeof DATABASE_POOLS;

/** Per-service defaults of the storage settings (what a service's main.ts may change). */
export interface StorageDefaults {
  /** The service whose pool sizes (DATABASE_POOLS) are the defaults; unset: the smallest. */
  service?: DatabaseService;
  /** DB_STATISTICS_MS: how often the statistics policy reads the tables' counters. */
  statisticsMs?: number;
  /** DB_ANALYZE_GROWTH: the growth after which a table is analyzed (0: never for growth). */
  analyzeGrowth?: number;
}

/**
 * For services with a database: PostgreSQL URL, or PGlite under STRATUS_DATA_DIR when unset, and
 * how it is run (storage/). `defaults` are the service's own defaults for the statistics policy.
 */
export function storageSettings(defaults: StorageDefaults = {}) {
  return {
    DATABASE_URL: z
      .string()
      .optional()
      .refine((v) => v === undefined || /^postgres(ql)?:\/\//.test(v), "must be a postgres:// URL")
      .describe("PostgreSQL URL; unset: embedded PGlite under STRATUS_DATA_DIR"),
    STRATUS_DATA_DIR: z.string().default(".stratus/data").describe("Where embedded PGlite databases live"),
    DB_POOL_SIZE: count(defaults.service ? DATABASE_POOLS[defaults.service].pool : 2, 1).describe(
      "PostgreSQL: connections in the main pool (docs/architecture.md, Database connections)",
    ),
    DB_GENERIC_POOL_SIZE: count(defaults.service ? DATABASE_POOLS[defaults.service].generic : 0).describe(
      "PostgreSQL: connections for statements run with a generic plan (0: they use the main pool, planned per call)",
    ),
    DB_POOL_WAIT_MS: count(5000, 1).describe(
      "PostgreSQL: how long a statement waits for a free connection before the call answers unavailable (503)",
    ),
    DB_PREPARED_STATEMENTS: count(1000).describe(
      "Statement texts prepared automatically per database (each once per connection); more run unprepared",
    ),
    DB_STATISTICS_MS: count(defaults.statisticsMs ?? 10_000).describe(
      "How often the tables' counters are read to decide on VACUUM (PGlite) and ANALYZE (0: never)",
    ),
    DB_ANALYZE_GROWTH: z.coerce
      .number()
      .min(0)
      .default(defaults.analyzeGrowth ?? 0)
      .refine((v) => v === 0 || v >= 1, "0 (off) or at least 1")
      .describe(
        "Analyze a table once it holds this many times the rows it had at its last ANALYZE (and 100 more), on PostgreSQL too (0: not for growth)",
      ),
  };
}

/** The storage settings with the runtime's defaults. */
export const storageConfig = storageSettings();

export function describeConfig(service: string, shape: ConfigShape): string {
  const lines = [`${service}: configuration from environment variables`, ""];
  for (const [name, schema] of Object.entries(shape)) {
    const result = schema.safeParse(undefined);
    const fallback = result.success
      ? result.data === undefined
        ? "(optional)"
        : `default ${JSON.stringify(result.data)}`
      : "(required)";
    lines.push(`  ${name.padEnd(24)} ${schema.description ?? ""} ${fallback}`.trimEnd());
  }
  return lines.join("\n");
}

/** Parses the environment; a bad value throws ConfigError naming every bad variable. */
export function parseConfig<S extends ConfigShape>(
  shape: S,
  env: NodeJS.ProcessEnv = process.env,
): z.infer<z.ZodObject<S>> {
  const input: Record<string, string | undefined> = {};
  for (const name of Object.keys(shape)) {
    const value = env[name];
    input[name] = value === "" ? undefined : value;
  }
  const result = z.object(shape).safeParse(input);
  if (result.success) return result.data;
  const problems = result.error.issues.map((issue) => {
    const name = String(issue.path[0] ?? "?");
    return problem(name, input[name], issue.message);
  });
  throw new ConfigError(`invalid configuration:\n${problems.join("\n")}`);
}

/** A variable whose value parsed but cannot be used (a file that cannot be read, say). */
export function invalidSetting(name: string, value: string | undefined, message: string): ConfigError {
  return new ConfigError(`invalid configuration:\n${problem(name, value, message)}`);
}

function problem(name: string, value: string | undefined, message: string): string {
  return `  ${name}=${JSON.stringify(value ?? "")}: ${message}`;
}

/**
 * For main.ts: prints help and exits 0 on --help, prints the problems and exits 2 on bad values
 * (those of `check` too: rules between several variables, which throws ConfigError).
 */
export function loadConfig<S extends ConfigShape>(
  service: string,
  shape: S,
  check?: (config: z.infer<z.ZodObject<S>>) => void,
): z.infer<z.ZodObject<S>> {
  if (process.argv.includes("--help") || process.argv.includes("-h")) {
    process.stdout.write(`${describeConfig(service, shape)}\n`);
    process.exit(0);
  }
  return stopOnConfigError(service, () => {
    const config = parseConfig(shape);
    check?.(config);
    return config;
  });
}

/** Runs `read`; a ConfigError it throws is printed and the process exits 2. */
export function stopOnConfigError<T>(service: string, read: () => T): T {
  try {
    return read();
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`${service}: ${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
}
