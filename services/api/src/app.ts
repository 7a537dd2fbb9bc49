// The compute API's routes, assembled once.
import type { ApiDeps } from "./deps.js";
import { adminRoutes } from "./handlers/admin.js";
import { auditRoutes } from "./handlers/audit.js";
import { flavorRoutes } from "./handlers/flavors.js";
import { imageRoutes } from "./handlers/images.js";
import { limitRoutes } from "./handlers/limits.js";
import { networkProxyRoutes } from "./handlers/network-proxies.js";
import { networkingLookupRoutes } from "./handlers/networking-lookups.js";
import { serverEventRoutes } from "./handlers/server-events.js";
import { serverRoutes } from "./handlers/servers.js";
import { Router } from "./http/router.js";

export function buildRouter(deps: ApiDeps): Router {
  const router = new Router();
  // Literal paths before :params (the first match wins).
  networkProxyRoutes(router, deps);
  serverRoutes(router, deps);
  serverEventRoutes(router, deps);
  flavorRoutes(router, deps);
  imageRoutes(router, deps);
  limitRoutes(router, deps);
  adminRoutes(router, deps);
  auditRoutes(router, deps);
  networkingLookupRoutes(router, deps);
  return router;
}
