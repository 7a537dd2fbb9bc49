// Configuration of the existing-Keystone mode (docs/identity.md), declared once: a service's main.ts
// spreads keystoneConfig into its own config shape and passes the parsed values to
// keystoneValidatorOptions, which checks the values that only make sense together.
import { z } from "zod";
import { ConfigError } from "../config.js";
import type { KeystoneValidatorOptions } from "./keystone.js";

export const keystoneConfig = {
  KEYSTONE_URL: z
    .url({ protocol: /^https?$/ })
    .optional()
    .describe(
      "Identity endpoint of an existing Keystone (http://host:5000 or …/v3); set: validate its tokens",
    ),
  KEYSTONE_SERVICE_USER: z
    .string()
    .optional()
    .describe("Service user that validates tokens (needs the service or admin role)"),
  KEYSTONE_SERVICE_PASSWORD: z.string().optional().describe("The service user's password"),
  KEYSTONE_SERVICE_PROJECT: z.string().optional().describe("Project the service user's token is scoped to"),
  KEYSTONE_SERVICE_USER_DOMAIN_NAME: z.string().default("Default").describe("Domain of the service user"),
  KEYSTONE_SERVICE_PROJECT_DOMAIN_NAME: z
    .string()
    .default("Default")
    .describe("Domain of the service user's project"),
  KEYSTONE_CACHE_TTL_S: z.coerce
    .number()
    .min(0)
    .max(300)
    .default(5)
    .describe(
      "Seconds a validation answer (valid or invalid) is reused: a revocation's worst-case delay; 0: none",
    ),
  KEYSTONE_CACHE_MAX_ENTRIES: z.coerce
    .number()
    .int()
    .min(1)
    .default(10_000)
    .describe("Most validation answers kept (the oldest goes first)"),
  KEYSTONE_TIMEOUT_MS: z.coerce
    .number()
    .int()
    .min(1)
    .default(5_000)
    .describe("Longest wait for Keystone before a validation fails as unavailable"),
};

export type KeystoneConfig = z.infer<z.ZodObject<typeof keystoneConfig>>;

const REQUIRED = [
  "KEYSTONE_URL",
  "KEYSTONE_SERVICE_USER",
  "KEYSTONE_SERVICE_PASSWORD",
  "KEYSTONE_SERVICE_PROJECT",
] as const;

/** Keystone's v3 root: http://host:5000 and http://host:5000/v3/ both name http://host:5000/v3. */
export function keystoneV3Url(url: string): string {
  const base = url.replace(/\/+$/, "");
  return base.endsWith("/v3") ? base : `${base}/v3`;
}

/**
 * The validator's options when the existing-Keystone mode is configured, undefined when none of
 * its required values is set. Some of them without the others is a ConfigError naming the missing.
 */
export function keystoneValidatorOptions(config: KeystoneConfig): KeystoneValidatorOptions | undefined {
  const missing = REQUIRED.filter((name) => !config[name]);
  if (missing.length === REQUIRED.length) return undefined;
  if (missing.length > 0) {
    const given = REQUIRED.filter((name) => config[name]).join(", ");
    const problems = missing.map((name) => `  ${name}="": required with ${given}`);
    throw new ConfigError(`invalid configuration:\n${problems.join("\n")}`);
  }
  return {
    url: keystoneV3Url(config.KEYSTONE_URL!),
    serviceUser: {
      name: config.KEYSTONE_SERVICE_USER!,
      password: config.KEYSTONE_SERVICE_PASSWORD!,
      domainName: config.KEYSTONE_SERVICE_USER_DOMAIN_NAME,
    },
    serviceProject: {
      name: config.KEYSTONE_SERVICE_PROJECT!,
      domainName: config.KEYSTONE_SERVICE_PROJECT_DOMAIN_NAME,
    },
    cacheTtlMs: config.KEYSTONE_CACHE_TTL_S * 1000,
    cacheMaxEntries: config.KEYSTONE_CACHE_MAX_ENTRIES,
    timeoutMs: config.KEYSTONE_TIMEOUT_MS,
  };
}
