import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type IdentityUnderTest, meshIdentity, type UserToken, type UserTokenSpec } from "./identity.js";
import { freePort, startNats, startNatsCluster, type TestNats } from "./nats-server.js";
import { SERVICE_NAMES, type ServiceName, type ServiceProcess } from "./processes.js";
import { startService } from "./start-service.js";

/** The environment variable each service reads for another service's RPC URL. */
export const URL_VARIABLES: Record<Exclude<ServiceName, "api">, string> = {
  conductor: "CONDUCTOR_URL",
  scheduler: "SCHEDULER_URL",
  "network-adapter": "NETWORK_URL",
  "compute-agent": "COMPUTE_AGENT_URL",
  identity: "IDENTITY_RPC_URL",
};

export interface Mesh {
  readonly nats: TestNats;
  /** The identity service every other service logs in to (always started). */
  readonly identity: IdentityUnderTest;
  readonly services: Partial<Record<ServiceName, ServiceProcess>>;
  /** RPC URL of a running service. */
  url(name: ServiceName): string;
  /** The api's REST base (http://127.0.0.1:<port>), when the api runs. */
  readonly apiUrl: string;
  /** The api's Networking API v2.0 base (http://127.0.0.1:<port>), when the api runs. */
  readonly networkApiUrl: string;
  /** The environment every service got: NATS_URL, *_URL, data dir. */
  readonly env: Record<string, string>;
  /** A token of `user` with roles on `project` (both made as needed) from the mesh's identity. */
  token(spec: UserTokenSpec): Promise<UserToken>;
  /** Stops one service (SIGTERM, or SIGKILL to simulate a crash). */
  stop(name: ServiceName, signal?: NodeJS.Signals): Promise<void>;
  /** Starts a stopped service again on the same port with the same environment. */
  restart(name: ServiceName, extraEnv?: Record<string, string>): Promise<ServiceProcess>;
  close(): Promise<void>;
}

/**
 * Starts a real nats-server, the identity service (its admin bootstrapped, the service users made
 * with generated passwords) and the named services (default: all) as processes, wired to each
 * other, each logged in as its service user, with PGlite databases in a fresh temp dir (or the
 * given DATABASE_URLs). This test process calls them as `tools` (serviceClient carries that
 * credential; a user's token comes from `token`). Services start in dependency order: identity,
 * scheduler, network-adapter, conductor, compute-agent, api.
 */
export async function startMesh(
  options: {
    services?: ServiceName[];
    env?: Record<string, string>;
    /** Per-service extra environment, e.g. { conductor: { DATABASE_URL } }. */
    serviceEnv?: Partial<Record<ServiceName, Record<string, string>>>;
    /** Run NATS as a cluster of this many nodes (streams made with as many replicas, up to 3). */
    natsCluster?: number;
  } = {},
): Promise<Mesh> {
  const wanted = new Set(options.services ?? SERVICE_NAMES);
  const order: ServiceName[] = ["scheduler", "network-adapter", "conductor", "compute-agent", "api"];
  const nats = options.natsCluster ? await startNatsCluster(options.natsCluster) : await startNats();
  const dataDir = mkdtempSync(join(tmpdir(), "stratus-mesh-"));
  const services: Partial<Record<ServiceName, ServiceProcess>> = {};
  let identity: IdentityUnderTest;
  try {
    identity = await meshIdentity(nats);
  } catch (err) {
    await nats.stop();
    rmSync(dataDir, { recursive: true, force: true });
    throw err;
  }
  services.identity = identity.process;
  const ports = new Map<ServiceName, number>();
  for (const name of order) ports.set(name, await freePort());
  ports.set("identity", identity.process.port);
  const env: Record<string, string> = {
    NATS_URL: nats.url,
    STRATUS_DATA_DIR: dataDir,
    LOG_LEVEL: "info",
    API_PORT: String(await freePort()),
    NETWORK_API_PORT: String(await freePort()),
    ...(options.natsCluster ? { NATS_STREAM_REPLICAS: String(Math.min(3, options.natsCluster)) } : {}),
    ...options.env,
  };
  for (const [name, variable] of Object.entries(URL_VARIABLES)) {
    env[variable] = `http://127.0.0.1:${ports.get(name as ServiceName)}`;
  }
  const launch = async (name: ServiceName, extra: Record<string, string> = {}) => {
    if (name === "identity") {
      await identity.restart(extra);
      services.identity = identity.process;
      return identity.process;
    }
    const p = await startService(name, {
      ...env,
      ...options.serviceEnv?.[name],
      ...extra,
      PORT: String(ports.get(name)),
    });
    services[name] = p;
    return p;
  };
  try {
    for (const name of order) if (wanted.has(name)) await launch(name);
  } catch (err) {
    await Promise.all(Object.values(services).map((s) => s.stop("SIGKILL")));
    await nats.stop();
    rmSync(dataDir, { recursive: true, force: true });
    throw err;
  }
  return {
    nats,
    identity,
    services,
    env,
    apiUrl: `http://127.0.0.1:${env.API_PORT}`,
    networkApiUrl: `http://127.0.0.1:${env.NETWORK_API_PORT}`,
    url(name) {
      return `http://127.0.0.1:${ports.get(name)}`;
    },
    token: (spec) => identity.token(spec),
    async stop(name, signal = "SIGTERM") {
      await services[name]?.stop(signal);
    },
    restart(name, extraEnv) {
      return launch(name, extraEnv);
    },
    async close() {
      await Promise.all(
        Object.entries(services)
          .filter(([name]) => name !== "identity")
          .map(([, s]) => s.stop("SIGTERM")),
      );
      // The identity goes with the NATS server it was started for.
      await nats.stop();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
