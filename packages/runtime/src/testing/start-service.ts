// Starting a service under test with what it needs to authenticate: on a NATS server of this
// harness, and unless its environment names credentials of its own (SERVICE_PASSWORD_FILE or a
// Keystone), it logs in to that server's harness identity (started on first use) as its service
// user, and this test process calls it as `tools`.
import { useCallerCredential } from "../auth/caller-credential.js";
import type { ServicePrincipalName } from "../auth/principal.js";
import { meshIdentityOn } from "./identity.js";
import { launchService, type ServiceProcess } from "./processes.js";

/** Starts a service on a free port (or env's PORT) and waits until it reports SERVING. */
export async function startService(
  name: string,
  env: Record<string, string>,
  /** The checkout whose service runs (another version's, for an upgrade test); default this one. */
  root?: string,
): Promise<ServiceProcess> {
  const ownCredentials = env.SERVICE_PASSWORD_FILE !== undefined || env.KEYSTONE_URL !== undefined;
  const identity = name === "identity" || ownCredentials ? undefined : await meshIdentityOn(env.NATS_URL);
  const login = identity?.serviceEnv(name as ServicePrincipalName);
  const p = await launchService(name, login ? { ...login, ...env } : env, root);
  if (identity) useCallerCredential(identity.tools, [p.url]);
  return p;
}
