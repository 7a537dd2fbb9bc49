// The identity service under test: its process on free ports (RPC and Keystone REST) with its own
// database (PGlite in a temp dir, or the given DATABASE_URL), wired to a NATS server, bootstrapped
// with an admin password.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort, startNats, type TestNats } from "./nats-server.js";
import { type ServiceProcess, startService } from "./processes.js";

export interface IdentityUnderTest {
  readonly nats: TestNats;
  readonly process: ServiceProcess;
  /** http://127.0.0.1:<port>: the Keystone API is under /v3. */
  readonly restUrl: string;
  /** The IdentityService RPC URL. */
  readonly rpcUrl: string;
  readonly adminPassword: string;
  readonly env: Record<string, string>;
  /** Stops the process and starts it again with the same ports, database and environment. */
  restart(extraEnv?: Record<string, string>): Promise<void>;
  close(): Promise<void>;
}

export async function startIdentity(
  options: { nats?: TestNats; env?: Record<string, string> } = {},
): Promise<IdentityUnderTest> {
  const nats = options.nats ?? (await startNats());
  const dataDir = mkdtempSync(join(tmpdir(), "stratus-identity-"));
  const restPort = await freePort();
  const adminPassword = `admin-${Math.random().toString(36).slice(2)}`;
  const env: Record<string, string> = {
    NATS_URL: nats.url,
    STRATUS_DATA_DIR: dataDir,
    PORT: String(await freePort()),
    IDENTITY_PORT: String(restPort),
    IDENTITY_PUBLIC_URL: `http://127.0.0.1:${restPort}`,
    IDENTITY_BOOTSTRAP_ADMIN_PASSWORD: adminPassword,
    ...options.env,
  };
  let proc: ServiceProcess;
  try {
    proc = await startService("identity", env);
  } catch (err) {
    if (!options.nats) await nats.stop();
    rmSync(dataDir, { recursive: true, force: true });
    throw err;
  }
  return {
    nats,
    get process() {
      return proc;
    },
    restUrl: `http://127.0.0.1:${restPort}`,
    rpcUrl: proc.url,
    adminPassword,
    env,
    async restart(extraEnv = {}) {
      await proc.stop();
      proc = await startService("identity", { ...env, ...extraEnv });
    },
    async close() {
      await proc.stop();
      if (!options.nats) await nats.stop();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
