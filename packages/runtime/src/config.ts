// Configuration from environment variables, declared once per service with zod: name, type,
// default and a one-line help (the schema's description). `--help` prints the list.
import { z } from "zod";
import { readNkeySeedFile } from "./nats.js";

export type ConfigShape = Record<string, z.ZodType>;

export class ConfigError extends Error {
  override readonly name = "ConfigError";
}

/** Variables every service shares. */
export const commonConfig = {
  NATS_URL: z.string().default("nats://127.0.0.1:4222").describe("NATS server URL(s), comma-separated"),
  NATS_NKEY_SEED_FILE: z
    .string()
    .optional()
    .superRefine((path, ctx) => {
      if (path === undefined) return;
      try {
        readNkeySeedFile(path);
      } catch (err) {
        ctx.addIssue({ code: "custom", message: (err as Error).message });
      }
    })
    .describe(
      "File with this service's NATS nkey seed (npm start: .stratus/nats/credentials/<service>.nk); unset: anonymous",
    ),
  LOG_LEVEL: z
    .enum(["trace", "debug", "info", "warn", "error", "fatal", "silent"])
    .default("info")
    .describe("Log level"),
  HOST: z.string().default("127.0.0.1").describe("Address to listen on"),
};

export const port = (fallback: number) => z.coerce.number().int().min(0).max(65535).default(fallback);

/** For services with a database: PostgreSQL URL, or PGlite under STRATUS_DATA_DIR when unset. */
export const storageConfig = {
  DATABASE_URL: z
    .string()
    .optional()
    .refine((v) => v === undefined || /^postgres(ql)?:\/\//.test(v), "must be a postgres:// URL")
    .describe("PostgreSQL URL; unset: embedded PGlite under STRATUS_DATA_DIR"),
  STRATUS_DATA_DIR: z.string().default(".stratus/data").describe("Where embedded PGlite databases live"),
};

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
    return `  ${name}=${JSON.stringify(input[name] ?? "")}: ${issue.message}`;
  });
  throw new ConfigError(`invalid configuration:\n${problems.join("\n")}`);
}

/**
 * For main.ts: prints help and exits 0 on --help, prints the problems and exits 2 on bad values.
 */
export function loadConfig<S extends ConfigShape>(service: string, shape: S): z.infer<z.ZodObject<S>> {
  if (process.argv.includes("--help") || process.argv.includes("-h")) {
    process.stdout.write(`${describeConfig(service, shape)}\n`);
    process.exit(0);
  }
  try {
    return parseConfig(shape);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`${service}: ${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
}
