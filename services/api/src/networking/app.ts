// The Networking API's routes, assembled once: each resource file registers its routes here.
import { autoAllocatedTopologyRoutes } from "./auto-allocated-topology.js";
import type { NetworkDeps } from "./deps.js";
import { networkRoutes } from "./networks.js";
import { portRoutes } from "./ports.js";
import { quotaRoutes } from "./quotas.js";
import { NetRouter } from "./router.js";
import { routerRoutes } from "./routers.js";
import { subnetRoutes } from "./subnets.js";

export function buildNetworkingRouter(deps: NetworkDeps): NetRouter {
  const router = new NetRouter();
  networkRoutes(router, deps);
  subnetRoutes(router, deps);
  portRoutes(router, deps);
  routerRoutes(router, deps);
  autoAllocatedTopologyRoutes(router, deps);
  quotaRoutes(router, deps);
  return router;
}
