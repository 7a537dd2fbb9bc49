import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort, startNats, type TestNats } from "./nats-server.js";
import { SERVICE_NAMES, type ServiceName, type ServiceProcess, startService } from "./processes.js";

/** The environment variable each service reads for another service's RPC URL. */
export const URL_VARIABLES: Record<Exclude<ServiceName, "api">, string> = {
  conductor: "CONDUCTOR_URL",
  scheduler: "SCHEDULER_URL",
  "network-adapter": "NETWORK_URL",
  "compute-agent": "COMPUTE_AGENT_URL",
};

export interface Mesh {
  readonly nats: TestNats;
  readonly services: Partial<Record<ServiceName, ServiceProcess>>;
  /** RPC URL of a running service. */
  url(name: ServiceName): string;
  /** The api's REST base (http://127.0.0.1:<port>), when the api runs. */
  readonly apiUrl: string;
  /** The environment every service got: NATS_URL, *_URL, data dir. */
  readonly env: Record<string, string>;
  /** Stops one service (SIGTERM, or SIGKILL to simulate a crash). */
  stop(name: ServiceName, signal?: NodeJS.Signals): Promise<void>;
  /** Starts a stopped service again on the same port with the same environment. */
  restart(name: ServiceName, extraEnv?: Record<string, string>): Promise<ServiceProcess>;
  close(): Promise<void>;
}

/**
 * Starts a real nats-server and the named services (default: all five) as processes, wired to
 * each other, with PGlite databases in a fresh temp dir (or the given DATABASE_URLs).
 * Services start in dependency order: scheduler, network-adapter, conductor, compute-agent, api.
 */
export async function startMesh(
  options: {
    services?: ServiceName[];
    env?: Record<string, string>;
    /** Per-service extra environment, e.g. { conductor: { DATABASE_URL } }. */
    serviceEnv?: Partial<Record<ServiceName, Record<string, string>>>;
  } = {},
): Promise<Mesh> {
  const wanted = new Set(options.services ?? SERVICE_NAMES);
  const order: ServiceName[] = ["scheduler", "network-adapter", "conductor", "compute-agent", "api"];
  const nats = await startNats();
  const dataDir = mkdtempSync(join(tmpdir(), "stratus-mesh-"));
  const ports = new Map<ServiceName, number>();
  for (const name of order) ports.set(name, await freePort());
  const env: Record<string, string> = {
    NATS_URL: nats.url,
    STRATUS_DATA_DIR: dataDir,
    LOG_LEVEL: "info",
    API_PORT: String(await freePort()),
    ...options.env,
  };
  for (const [name, variable] of Object.entries(URL_VARIABLES)) {
    env[variable] = `http://127.0.0.1:${ports.get(name as ServiceName)}`;
  }
  const services: Partial<Record<ServiceName, ServiceProcess>> = {};
  const launch = async (name: ServiceName, extra: Record<string, string> = {}) => {
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
    services,
    env,
    apiUrl: `http://127.0.0.1:${env.API_PORT}`,
    url(name) {
      return `http://127.0.0.1:${ports.get(name)}`;
    },
    async stop(name, signal = "SIGTERM") {
      await services[name]?.stop(signal);
    },
    restart(name, extraEnv) {
      return launch(name, extraEnv);
    },
    async close() {
      await Promise.all(Object.values(services).map((s) => s.stop("SIGTERM")));
      await nats.stop();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
