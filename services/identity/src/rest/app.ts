// The Keystone v3 routes this service serves.
import { KeystoneRouter } from "./keystone-server.js";
import { applicationCredentialRoutes } from "./routes/application-credentials.js";
import { assignmentRoutes } from "./routes/assignments.js";
import { authRoutes } from "./routes/auth.js";
import { catalogRoutes } from "./routes/catalog.js";
import type { RouteDeps } from "./routes/deps.js";
import { projectRoutes } from "./routes/projects.js";
import { roleRoutes } from "./routes/roles.js";
import { userRoutes } from "./routes/users.js";

export function buildKeystoneRouter(deps: RouteDeps): KeystoneRouter {
  const router = new KeystoneRouter();
  authRoutes(router, deps);
  userRoutes(router, deps);
  applicationCredentialRoutes(router, deps);
  projectRoutes(router, deps);
  roleRoutes(router, deps);
  assignmentRoutes(router, deps);
  catalogRoutes(router, deps);
  return router;
}
