// api: the edge. Serves the Nova-compatible REST API on API_PORT, and ServerWatchService (the
// servers' live progress, for users) with health and reflection on PORT.

import { isIP } from "node:net";
import { ConductorService } from "@stratus/contracts/compute/v1";
import { ComputeAgentService } from "@stratus/contracts/computeagent/v1";
import { ServersChangedSchema } from "@stratus/contracts/events/v1";
import { NetworkService } from "@stratus/contracts/network/v1";
import { PlacementService } from "@stratus/contracts/scheduler/v1/placement";
import { bootService, ConfigError, peerUrl, Subjects, serviceClient } from "@stratus/runtime";
import { closeHttp, listenHttp } from "@stratus/runtime/http";
import { z } from "zod";
import { buildRouter } from "./app.js";
import { DEFAULT_CREATE_RETRY_MS } from "./handlers/create-server.js";
import { edgeAuthenticator } from "./http/authenticate.js";
import { createRestServer } from "./http/server.js";
import { ImageCatalogue, parseImages } from "./images.js";
import { ListCache } from "./list-cache.js";
import { buildNetworkingRouter } from "./networking/app.js";
import { createNetworkingServer } from "./networking/server.js";
import { ServerEvents } from "./watch/server-events.js";
import { serverWatchPolicy, serverWatchService } from "./watch/server-watch-service.js";

const booted = await bootService({
  name: "api",
  defaultPort: 9100,
  check: (c) => {
    if (c.STRATUS_INSECURE_DEV_TOKENS === "1" && !isLoopback(c.HOST)) {
      throw new ConfigError(
        `invalid configuration:\n  STRATUS_INSECURE_DEV_TOKENS=1: refused with HOST=${JSON.stringify(c.HOST)} (the insecure development tokens are served on a loopback address only)`,
      );
    }
  },
  config: {
    STRATUS_INSECURE_DEV_TOKENS: z
      .enum(["0", "1"])
      .default("0")
      .describe(
        "1: INSECURE development mode: the REST edge also takes the unchecked token <user>:<project> (user admin is admin); loopback HOST only, warned at every start",
      ),
    API_AUTH_URI: z
      .url({ protocol: /^https?$/ })
      .optional()
      .describe(
        "The identity's public URL named in a 401's WWW-Authenticate (keystonemiddleware's www_authenticate_uri); default KEYSTONE_URL, else IDENTITY_URL",
      ),
    API_PORT: z.coerce.number().int().min(0).max(65535).default(8774).describe("REST compute API port"),
    NETWORK_API_PORT: z.coerce
      .number()
      .int()
      .min(0)
      .max(65535)
      .default(9696)
      .describe("REST Networking API v2.0 port (Neutron's)"),
    NETWORK_API_PUBLIC_URL: z
      .url()
      .optional()
      .describe("Base URL for the Networking API's links (default: from the Host header)"),
    CONDUCTOR_URL: peerUrl.default("http://127.0.0.1:9101").describe("Conductor RPC URL(s)"),
    NETWORK_URL: peerUrl.default("http://127.0.0.1:9103").describe("Network-adapter RPC URL(s)"),
    SCHEDULER_URL: peerUrl.default("http://127.0.0.1:9102").describe("Scheduler (placement) RPC URL(s)"),
    COMPUTE_AGENT_URL: peerUrl.default("http://127.0.0.1:9104").describe("Compute-agent RPC URL(s)"),
    API_BODY_LIMIT: z.coerce
      .number()
      .int()
      .min(1024)
      .default(114688)
      .describe("Largest request body in bytes (Nova's max_request_body_size)"),
    API_CREATE_RETRY_MS: z.coerce
      .number()
      .int()
      .min(0)
      .default(DEFAULT_CREATE_RETRY_MS)
      .describe(
        "How long a server create whose answer from the conductor was lost (connection reset, unavailable, deadline) is asked again under its client token before the client gets a 503",
      ),
    API_PUBLIC_URL: z.url().optional().describe("Base URL for links (default: from the Host header)"),
    API_LIST_CACHE_MS: z.coerce
      .number()
      .int()
      .min(0)
      .default(2000)
      .describe(
        "Server list answers are kept until their project's servers change, at most this long (a lost change event); 0: no cache",
      ),
    API_LIST_CACHE_MB: z.coerce
      .number()
      .int()
      .min(1)
      .default(64)
      .describe("Memory for kept server list answers"),
    IMAGES: z
      .string()
      .optional()
      .describe("Extra images as a JSON array of {id, name, min_disk?, min_ram?, size?, ...}"),
  },
});
/** Whether `host` is a loopback address (127.0.0.0/8, ::1, localhost): reachable from this machine only. */
function isLoopback(host: string): boolean {
  if (host === "localhost" || host === "::1") return true;
  return isIP(host) === 4 && host.startsWith("127.");
}

const { config, logger, lifecycle, bus } = booted;
const insecureDevTokens = config.STRATUS_INSECURE_DEV_TOKENS === "1";
if (insecureDevTokens) {
  logger.warn(
    { host: config.HOST },
    "INSECURE development mode (STRATUS_INSECURE_DEV_TOKENS=1): the REST API takes the unchecked token <user>:<project>; anyone who can reach it is anyone they claim to be",
  );
}

let images: ImageCatalogue;
try {
  images = new ImageCatalogue(parseImages(config.IMAGES));
} catch (err) {
  logger.fatal({ err }, "invalid IMAGES");
  process.exit(1);
}

// The server list cache follows the conductor's change events; while NATS is down (events may be
// missed) it is emptied and not used.
const listCache = new ListCache({
  ttlMs: config.API_LIST_CACHE_MS,
  maxBytes: config.API_LIST_CACHE_MB * 2 ** 20,
});
bus.subscribe(Subjects.serversChanged, ServersChangedSchema, (e) => listCache.changed(e.projectIds));
await bus.nc.flush();
void (async () => {
  for await (const s of bus.nc.status()) {
    if (s.type === "disconnect") listCache.suspend();
    else if (s.type === "reconnect") listCache.resume();
  }
})();

// The servers' state changes, for ServerWatchService and GET /v2.1/stratus/server-events.
const serverEvents = new ServerEvents(bus.nc, logger);

// A peer that cannot be reached is named by its kind in the client's 503.
const network = serviceClient(NetworkService, config.NETWORK_URL, { peer: "network" });
const router = buildRouter({
  conductor: serviceClient(ConductorService, config.CONDUCTOR_URL, { peer: "compute" }),
  network,
  placement: serviceClient(PlacementService, config.SCHEDULER_URL, { peer: "placement" }),
  computeAgent: serviceClient(ComputeAgentService, config.COMPUTE_AGENT_URL, { peer: "compute" }),
  images,
  logger,
  listCache,
  serverEvents,
  createRetryMs: config.API_CREATE_RETRY_MS,
});
const authenticate = edgeAuthenticator({
  validator: booted.validator,
  authUri: config.API_AUTH_URI ?? booted.issuerUrl ?? "",
  insecureDevTokens,
  logger,
});
const rest = createRestServer({
  authenticate,
  router,
  logger,
  bodyLimit: config.API_BODY_LIMIT,
  publicUrl: config.API_PUBLIC_URL,
  tls: booted.tls,
});
await new Promise<void>((resolve) => rest.listen(config.API_PORT, config.HOST, resolve));
lifecycle.onShutdown(
  "rest server",
  () =>
    new Promise<void>((resolve) => {
      rest.close(() => resolve());
      rest.closeIdleConnections();
    }),
);
logger.info({ port: config.API_PORT }, "compute API listening");

const networking = createNetworkingServer({
  authenticate,
  router: buildNetworkingRouter({ network, logger }),
  logger,
  bodyLimit: config.API_BODY_LIMIT,
  publicUrl: config.NETWORK_API_PUBLIC_URL,
  tls: booted.tls,
});
await listenHttp(networking, config.NETWORK_API_PORT, config.HOST);
lifecycle.onShutdown("networking rest server", () => closeHttp(networking));
logger.info({ port: config.NETWORK_API_PORT }, "networking API listening");

await booted.serve([serverWatchService(serverEvents)], { policies: [serverWatchPolicy] });
// First at shutdown: open watches end, so that neither edge waits on them.
lifecycle.onShutdown("server watches", () => serverEvents.close());
