// The identity service under test: its process on free ports (RPC and Keystone REST) with its own
// database (PGlite in a temp dir, or the given DATABASE_URL), wired to a NATS server, bootstrapped
// with an admin password, with the mesh's service users made (auth/service-users.ts) and this
// test process logged in as `tools` for its calls to the identity and to the services started on
// it. meshIdentity is the one identity the harness starts per NATS server for the services on it.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { dropCallerCredential, useCallerCredential } from "../auth/caller-credential.js";
import { KeystoneAdmin } from "../auth/keystone-admin.js";
import { LoginCredential } from "../auth/login-credential.js";
import { SERVICE_PROJECT, type ServicePrincipalName, serviceUserName } from "../auth/principal.js";
import { serviceUserLogin } from "../auth/service-auth.js";
import { ensureServiceUsers, passwordFileOf, readPasswordFile } from "../auth/service-users.js";
import { createLogger, type Logger } from "../log.js";
import { SERVICE_ROLES } from "../nats-subjects.js";
import { freePort, harnessNats, startNats, type TestNats } from "./nats-server.js";
import { launchService, type ServiceProcess } from "./processes.js";

/** A user's token from the identity under test, with the ids of the user and its project. */
export interface UserToken {
  token: string;
  userId: string;
  projectId: string;
  expiresAt: Date;
}

/** A user, with roles on a project (each made when missing). */
export interface UserTokenSpec {
  user: string;
  project: string;
  roles: readonly string[];
}

export interface IdentityUnderTest {
  readonly nats: TestNats;
  readonly process: ServiceProcess;
  /** http://127.0.0.1:<port>: the Keystone API is under /v3. */
  readonly restUrl: string;
  /** The IdentityService RPC URL. */
  readonly rpcUrl: string;
  readonly adminPassword: string;
  readonly env: Record<string, string>;
  /** The administrator's REST client (Keystone v3). */
  readonly admin: KeystoneAdmin;
  /** This test process's credential (the `tools` service principal) for the services on this identity. */
  readonly tools: LoginCredential;
  /** What a service needs to log in to this identity as its service user. */
  serviceEnv(service: ServicePrincipalName): Record<string, string>;
  /** A token of `user` scoped to `project` (user, project and roles made as needed). */
  token(spec: UserTokenSpec): Promise<UserToken>;
  /** A token of a service principal, as the service logs in (its service user, project `service`). */
  serviceToken(service: ServicePrincipalName): Promise<string>;
  /** Stops the process and starts it again with the same ports, database and environment. */
  restart(extraEnv?: Record<string, string>): Promise<void>;
  close(): Promise<void>;
}

let logger: Logger | undefined;
/** The harness's own log (its logins), one per test process. */
function harnessLogger(): Logger {
  logger ??= createLogger("test-harness", "warn");
  return logger;
}

/** Every service principal but the identity itself (which logs in nowhere), and `tools`. */
const PRINCIPALS: ServicePrincipalName[] = [...SERVICE_ROLES.filter((r) => r !== "identity"), "tools"];

export async function startIdentity(
  options: { nats?: TestNats; env?: Record<string, string> } = {},
): Promise<IdentityUnderTest> {
  const nats = options.nats ?? (await startNats());
  const dataDir = mkdtempSync(join(tmpdir(), "stratus-identity-"));
  const credentialsDir = join(dataDir, "credentials");
  const restPort = await freePort();
  const restUrl = `http://127.0.0.1:${restPort}`;
  const adminPassword = `admin-${Math.random().toString(36).slice(2)}`;
  const env: Record<string, string> = {
    NATS_URL: nats.url,
    STRATUS_DATA_DIR: dataDir,
    PORT: String(await freePort()),
    IDENTITY_PORT: String(restPort),
    IDENTITY_PUBLIC_URL: restUrl,
    IDENTITY_BOOTSTRAP_ADMIN_PASSWORD: adminPassword,
    ...options.env,
  };
  let proc: ServiceProcess | undefined;
  let tools: LoginCredential | undefined;
  const admin = new KeystoneAdmin(`${restUrl}/v3`, {
    user: "admin",
    password: adminPassword,
    project: "admin",
  });
  try {
    proc = await launchService("identity", env);
    await ensureServiceUsers(admin, PRINCIPALS, credentialsDir);
    const login = serviceUserLogin(
      restUrl,
      "tools",
      passwordFileOf(credentialsDir, "tools"),
      harnessLogger(),
    );
    tools = new LoginCredential("tools", login, harnessLogger());
    await tools.start();
    useCallerCredential(tools, [proc.url]);
  } catch (err) {
    tools?.close();
    await proc?.stop();
    if (!options.nats) await nats.stop();
    rmSync(dataDir, { recursive: true, force: true });
    throw err;
  }
  const credential = tools;
  const passwords = new Map<string, string>();
  let current = proc;
  return {
    nats,
    get process() {
      return current;
    },
    restUrl,
    rpcUrl: proc.url,
    adminPassword,
    env,
    admin,
    tools: credential,
    serviceEnv: (service) => ({
      IDENTITY_URL: restUrl,
      IDENTITY_RPC_URL: current.url,
      SERVICE_PASSWORD_FILE: passwordFileOf(credentialsDir, service),
    }),
    async token(spec) {
      // A user this harness made keeps its password: setting it again would revoke its tokens.
      let password = passwords.get(spec.user);
      const made = password !== undefined;
      if (!password) {
        password = `pw-${Math.random().toString(36).slice(2)}`;
        passwords.set(spec.user, password);
      }
      const { userId, projectId } = await admin.ensureUser(
        { name: spec.user, password, ...spec },
        { keepPassword: made },
      );
      const issued = await admin.issueToken({ user: spec.user, password, project: spec.project });
      return { token: issued.token, userId, projectId, expiresAt: issued.expiresAt };
    },
    async serviceToken(service) {
      const password = readPasswordFile(passwordFileOf(credentialsDir, service));
      return (await admin.issueToken({ user: serviceUserName(service), password, project: SERVICE_PROJECT }))
        .token;
    },
    async restart(extraEnv = {}) {
      await current.stop();
      current = await launchService("identity", { ...env, ...extraEnv });
    },
    async close() {
      credential.close();
      dropCallerCredential(credential);
      await current.stop();
      if (!options.nats) await nats.stop();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** The harness's identity of each NATS server, started on first use. */
const meshIdentities = new Map<string, Promise<IdentityUnderTest>>();

/**
 * The identity the services on `nats` log in to: started with the first service that needs it
 * (passwords hashed cheaply: test passwords need no protection), stopped with the NATS server.
 */
export function meshIdentity(
  nats: TestNats,
  /** More environment for the identity, when this call starts it (e.g. its DATABASE_URL). */
  env: Record<string, string> = {},
): Promise<IdentityUnderTest> {
  let identity = meshIdentities.get(nats.url);
  if (!identity) {
    identity = startIdentity({
      nats,
      env: {
        IDENTITY_PASSWORD_HASH_MEMORY_KIB: "1024",
        IDENTITY_PASSWORD_HASH_TIME_COST: "1",
        LOG_LEVEL: "warn",
        ...env,
      },
    });
    meshIdentities.set(nats.url, identity);
    const started = identity;
    nats.beforeStop(async () => {
      meshIdentities.delete(nats.url);
      await (await started).close();
    });
    identity.catch(() => meshIdentities.delete(nats.url));
  }
  return identity;
}

/** The harness identity for a service started on natsUrl, when that is a harness NATS server. */
export function meshIdentityOn(natsUrl: string | undefined): Promise<IdentityUnderTest> | undefined {
  const nats = harnessNats(natsUrl);
  return nats ? meshIdentity(nats) : undefined;
}
