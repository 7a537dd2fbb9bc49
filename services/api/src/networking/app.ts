// The Networking API's routes, assembled once: each resource file registers its routes here.
import type { NetworkDeps } from "./deps.js";
import { networkRoutes } from "./networks.js";
import { NetRouter } from "./router.js";
import { subnetRoutes } from "./subnets.js";

export function buildNetworkingRouter(deps: NetworkDeps): NetRouter {
  const router = new NetRouter();
  networkRoutes(router, deps);
  subnetRoutes(router, deps);
  return router;
}
