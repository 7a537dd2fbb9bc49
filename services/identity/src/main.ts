// identity: Keystone v3 on IDENTITY_PORT (users, projects, domains, roles, application
// credentials, the catalog; tokens signed as JWS) and IdentityService on PORT (the public keys and
// revocations other services validate tokens with). Revocations are published on NATS.
import { TokenRevokedSchema } from "@stratus/contracts/events/v1";
import { bootService, openServiceDatabase, Subjects, storageSettings } from "@stratus/runtime";
import { revocationToEvent, watchRevocationEvents } from "@stratus/runtime/auth";
import { closeHttp, listenHttp } from "@stratus/runtime/http";
import { z } from "zod";
import { bootstrap } from "./bootstrap.js";
import { IdentityCore } from "./identity-core.js";
import { buildKeystoneRouter } from "./rest/app.js";
import { createKeystoneServer } from "./rest/keystone-server.js";
import { identityPolicy } from "./rpc/identity-policy.js";
import { identityService } from "./rpc/identity-service.js";

const seconds = (fallback: number, min = 0) => z.coerce.number().int().min(min).default(fallback);

const booted = await bootService({
  name: "identity",
  defaultPort: 9105,
  issuesTokens: true,
  config: {
    ...storageSettings({ service: "identity" }),
    IDENTITY_PORT: z.coerce
      .number()
      .int()
      .min(0)
      .max(65535)
      .default(5000)
      .describe("Keystone v3 REST API port"),
    IDENTITY_PUBLIC_URL: z
      .url()
      .optional()
      .describe(
        "Public base URL (catalog endpoint <url>/v3, links, WWW-Authenticate); default http(s)://HOST:IDENTITY_PORT (https with TLS_CERT_FILE)",
      ),
    IDENTITY_INTERNAL_URL: z.url().optional().describe("Internal identity URL for the catalog (bootstrap)"),
    IDENTITY_ADMIN_URL: z.url().optional().describe("Admin identity URL for the catalog (bootstrap)"),
    IDENTITY_TOKEN_TTL_S: seconds(3600, 1).describe(
      "Token lifetime in seconds (Keystone's [token] expiration)",
    ),
    IDENTITY_KEY_ROTATION_S: seconds(7 * 86400).describe(
      "A signing key older than this is replaced by a new one (0: never); old keys verify until their tokens expire",
    ),
    IDENTITY_LOCKOUT_FAILURE_ATTEMPTS: seconds(5).describe(
      "Failed password checks in a row that lock a user (Keystone's lockout_failure_attempts; 0: never)",
    ),
    IDENTITY_LOCKOUT_DURATION_S: seconds(1800, 1).describe(
      "How long a locked user stays locked (lockout_duration)",
    ),
    IDENTITY_PASSWORD_HASH_MEMORY_KIB: z.coerce
      .number()
      .int()
      .min(1024)
      .max(1 << 21)
      .default(19456)
      .describe("argon2id memory per password hash, KiB"),
    IDENTITY_PASSWORD_HASH_TIME_COST: z.coerce
      .number()
      .int()
      .min(1)
      .max(20)
      .default(2)
      .describe("argon2id passes per password hash"),
    IDENTITY_BOOTSTRAP_ADMIN_PASSWORD: z
      .string()
      .optional()
      .describe("When set: create (idempotently) the default domain, roles, admin project and user with it"),
    IDENTITY_BOOTSTRAP_ADMIN_USERNAME: z
      .string()
      .min(1)
      .max(255)
      .default("admin")
      .describe("Bootstrap admin user"),
    IDENTITY_BOOTSTRAP_PROJECT_NAME: z
      .string()
      .min(1)
      .max(255)
      .default("admin")
      .describe("Bootstrap admin project"),
    IDENTITY_BOOTSTRAP_REGION: z
      .string()
      .min(1)
      .max(255)
      .default("RegionOne")
      .describe("Region of the endpoints"),
    IDENTITY_BODY_LIMIT: z.coerce
      .number()
      .int()
      .min(1024)
      .default(114688)
      .describe("Largest request body in bytes (Keystone's max_request_body_size)"),
  },
});
const { config, logger, lifecycle, bus } = booted;
const scheme = booted.tls ? "https" : "http";
const publicUrl = (
  config.IDENTITY_PUBLIC_URL ?? `${scheme}://${config.HOST}:${config.IDENTITY_PORT}`
).replace(/\/+$/, "");

const db = await openServiceDatabase(booted, "identity", new URL("../migrations", import.meta.url).pathname);
const core = await IdentityCore.open(db, {
  tokenTtlSeconds: config.IDENTITY_TOKEN_TTL_S,
  keyRotationMs: config.IDENTITY_KEY_ROTATION_S * 1000,
  lockout: {
    failureAttempts: config.IDENTITY_LOCKOUT_FAILURE_ATTEMPTS,
    durationMs: config.IDENTITY_LOCKOUT_DURATION_S * 1000,
  },
  hashCost: {
    memoryKib: config.IDENTITY_PASSWORD_HASH_MEMORY_KIB,
    timeCost: config.IDENTITY_PASSWORD_HASH_TIME_COST,
  },
  logger,
  events: {
    publish: (r) => bus.publish(Subjects.identityRevoked, TokenRevokedSchema, revocationToEvent(r)),
    watch: (listener) => watchRevocationEvents(bus, listener),
  },
});
lifecycle.onShutdown("identity core", () => core.close());
const { dir, hasher, authenticator, tokens, keys, revocations } = core;

if (config.IDENTITY_BOOTSTRAP_ADMIN_PASSWORD) {
  const endpoints = {
    public: `${publicUrl}/v3`,
    ...(config.IDENTITY_INTERNAL_URL
      ? { internal: `${config.IDENTITY_INTERNAL_URL.replace(/\/+$/, "")}/v3` }
      : {}),
    ...(config.IDENTITY_ADMIN_URL ? { admin: `${config.IDENTITY_ADMIN_URL.replace(/\/+$/, "")}/v3` } : {}),
  };
  await bootstrap(
    dir,
    hasher,
    {
      adminPassword: config.IDENTITY_BOOTSTRAP_ADMIN_PASSWORD,
      adminUsername: config.IDENTITY_BOOTSTRAP_ADMIN_USERNAME,
      projectName: config.IDENTITY_BOOTSTRAP_PROJECT_NAME,
      region: config.IDENTITY_BOOTSTRAP_REGION,
      endpoints,
    },
    logger,
  );
}

// Key rotation and the pruning of revocations no token can match any more.
const upkeepMs = Math.min(60_000, Math.max(1000, (config.IDENTITY_KEY_ROTATION_S * 1000) / 4 || 60_000));
const upkeep = setInterval(() => {
  void core.upkeep().catch((err) => logger.warn({ err }, "identity upkeep failed"));
}, upkeepMs);
upkeep.unref();
lifecycle.onShutdown("upkeep", async () => clearInterval(upkeep));

const rest = createKeystoneServer({
  router: buildKeystoneRouter({ dir, authenticator, tokens, hasher }),
  logger,
  bodyLimit: config.IDENTITY_BODY_LIMIT,
  publicUrl: config.IDENTITY_PUBLIC_URL,
  validate: (token) => tokens.validate(token),
  tls: booted.tls,
});
await listenHttp(rest, config.IDENTITY_PORT, config.HOST);
lifecycle.onShutdown("rest server", () => closeHttp(rest));
logger.info({ port: config.IDENTITY_PORT, public_url: publicUrl }, "identity API listening");

// Callers of IdentityService are checked with this service's own validator, as its REST callers.
await booted.serve([identityService({ keys, revocations, tokenTtlSeconds: config.IDENTITY_TOKEN_TTL_S })], {
  policies: [identityPolicy],
  validator: core.validator,
});
