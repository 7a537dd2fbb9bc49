// Stratus as a small cloud on one machine: a routed 3-node NATS cluster, `identityReplicas` of the
// identity and `replicas` of each control-plane service (scheduler, network-adapter, conductor,
// api) on one PostgreSQL, and `agents` compute-agent processes of `hostsPerAgent` hosts each.
// Replica i of a service calls replica i of its peers first and the others when it cannot reach
// it (comma-separated URLs, serviceClient; a load balancer's Service spreads and fails over in a
// real deployment); the agents spread over the replicas by their number. What `npm run cluster`
// runs, and what the failure tests kill parts of.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type IdentityUnderTest, meshIdentity } from "./identity.js";
import { freePort, startNatsCluster, type TestNatsCluster } from "./nats-server.js";
import { createTempDatabase, type TempDatabase } from "./postgres.js";
import { launchService, type ServiceProcess } from "./processes.js";
import { startService } from "./start-service.js";

export type ReplicatedService = "scheduler" | "network-adapter" | "conductor" | "api";
const ORDER: ReplicatedService[] = ["scheduler", "network-adapter", "conductor", "api"];

export interface ClusterOptions {
  /** Replicas of each control-plane service (default 2). */
  replicas?: number;
  /** Compute-agent processes (default 10). */
  agents?: number;
  /** Hosts each agent runs (default 10): agent a runs a<a>-h[1-n], physnets by rack (below). */
  hostsPerAgent?: number;
  /**
   * Identity replicas (default 2), on one PostgreSQL database; control-plane replica i (and the
   * agents that call it) logs in to identity i % n and reads its keys and revocations there
   * (from the others when it cannot reach that one).
   */
  identityReplicas?: number;
  /** NATS nodes (default 3). */
  natsNodes?: number;
  /** Environment of every service, and per service. */
  env?: Record<string, string>;
  serviceEnv?: Partial<Record<ReplicatedService | "compute-agent", Record<string, string>>>;
}

export interface Cluster {
  readonly nats: TestNatsCluster;
  /** The identity's first replica (the harness's admin and tokens come from it). */
  readonly identity: IdentityUnderTest;
  /** identities[i]: identity replica i (0 is the one `identity` runs). */
  readonly identities: ServiceProcess[];
  /** replicas[name][i]: replica i of a control-plane service. */
  readonly replicas: Record<ReplicatedService, ServiceProcess[]>;
  readonly agents: ServiceProcess[];
  /** The PostgreSQL database of each service that keeps one (its replicas share it). */
  readonly databases: readonly { service: ReplicatedService | "identity"; url: string }[];
  /** Each agent's hosts (the COMPUTE_HOSTS pattern it was given). */
  readonly agentHosts: string[];
  /** The REST base of api replica i. */
  apiUrl(i: number): string;
  /** Kills replica i of a service (the identity's too), or agent process i (SIGKILL), as a crash. */
  kill(name: ReplicatedService | "identity" | "compute-agent", i: number): Promise<void>;
  /** Starts replica (or agent) i again with its environment (a replica on its ports). */
  restart(name: ReplicatedService | "identity" | "compute-agent", i: number): Promise<ServiceProcess>;
  close(): Promise<void>;
}

/**
 * Agents of odd number are in rack1, even in rack2: each rack is a segment of a routed network on
 * its physical network (physnet-rack1, physnet-rack2).
 */
export function agentHostPattern(agent: number, hosts: number): string {
  return `rack${agent % 2 === 1 ? 1 : 2}-a${agent}-[1-${hosts}]`;
}

export async function startCluster(options: ClusterOptions = {}): Promise<Cluster> {
  const replicas = options.replicas ?? 2;
  const agentCount = options.agents ?? 10;
  const hostsPerAgent = options.hostsPerAgent ?? 10;
  const nats = await startNatsCluster(options.natsNodes ?? 3);
  const dataDir = mkdtempSync(join(tmpdir(), "stratus-cluster-"));
  const databases: TempDatabase[] = [];
  const started: ServiceProcess[] = [];
  const procs = {} as Record<ReplicatedService, ServiceProcess[]>;
  const agents: ServiceProcess[] = [];
  const envs = new Map<string, Record<string, string>>();
  try {
    const dbUrl: Partial<Record<ReplicatedService, string>> = {};
    const owned: { service: ReplicatedService | "identity"; url: string }[] = [];
    // The identity's replicas share one database: users, revocations and signing keys.
    const identityReplicas = options.identityReplicas ?? 2;
    const identityDb = await createTempDatabase("stratus_cluster_identity");
    databases.push(identityDb);
    owned.push({ service: "identity", url: identityDb.url });
    const identity = await meshIdentity(nats, { DATABASE_URL: identityDb.url });
    const identityProcs: ServiceProcess[] = [identity.process];
    const identityUrls = [{ restUrl: identity.restUrl, rpcUrl: identity.rpcUrl }];
    for (let i = 1; i < identityReplicas; i++) {
      const restPort = await freePort();
      const restUrl = `http://127.0.0.1:${restPort}`;
      // Not bootstrapped again (the first replica did it; a bootstrap sets the admin's password).
      const { IDENTITY_BOOTSTRAP_ADMIN_PASSWORD: _bootstrapped, ...env } = identity.env;
      const replicaEnv = {
        ...env,
        PORT: String(await freePort()),
        IDENTITY_PORT: String(restPort),
        IDENTITY_PUBLIC_URL: restUrl,
      };
      envs.set(`identity/${i}`, replicaEnv);
      const p = await launchService("identity", replicaEnv);
      started.push(p);
      identityProcs[i] = p;
      identityUrls[i] = { restUrl, rpcUrl: p.url };
    }
    for (const name of ["scheduler", "network-adapter", "conductor"] as const) {
      const d = await createTempDatabase(`stratus_cluster_${name.replace("-", "_")}`);
      databases.push(d);
      dbUrl[name] = d.url;
      owned.push({ service: name, url: d.url });
    }
    const ports: Record<ReplicatedService, number[]> = {
      scheduler: [],
      "network-adapter": [],
      conductor: [],
      api: [],
    };
    for (const name of ORDER) for (let i = 0; i < replicas; i++) ports[name].push(await freePort());
    const apiPorts: number[] = [];
    const networkApiPorts: number[] = [];
    for (let i = 0; i < replicas; i++) apiPorts.push(await freePort());
    for (let i = 0; i < replicas; i++) networkApiPorts.push(await freePort());
    const common = {
      NATS_URL: nats.url,
      NATS_STREAM_REPLICAS: String(Math.min(3, options.natsNodes ?? 3)),
      STRATUS_DATA_DIR: dataDir,
      LOG_LEVEL: "warn",
      ...options.env,
    };
    // Replica i prefers replica i of each peer and falls back to the others (serviceClient), as
    // a load balancer in front of the replicas would spread and fail over: the list of URLs from
    // replica i % n on.
    const fromReplica = (urls: string[], i: number) => {
      const k = i % urls.length;
      return [...urls.slice(k), ...urls.slice(0, k)].join(",");
    };
    const rpcUrls = (list: number[]) => list.map((port) => `http://127.0.0.1:${port}`);
    const replicaUrls = {
      SCHEDULER_URL: rpcUrls(ports.scheduler),
      NETWORK_URL: rpcUrls(ports["network-adapter"]),
      CONDUCTOR_URL: rpcUrls(ports.conductor),
      IDENTITY_RPC_URL: identityUrls.map((u) => u.rpcUrl),
    };
    const peers = (i: number) => ({
      ...Object.fromEntries(Object.entries(replicaUrls).map(([name, urls]) => [name, fromReplica(urls, i)])),
      IDENTITY_URL: identityUrls[i % identityReplicas]!.restUrl,
    });
    for (const name of ORDER) {
      procs[name] = [];
      await Promise.all(
        Array.from({ length: replicas }, async (_, i) => {
          const env = {
            ...common,
            ...peers(i),
            ...(dbUrl[name] ? { DATABASE_URL: dbUrl[name]! } : {}),
            ...(name === "api"
              ? { API_PORT: String(apiPorts[i]), NETWORK_API_PORT: String(networkApiPorts[i]) }
              : {}),
            ...(name === "conductor" ? { CONDUCTOR_ID: `conductor-${i}` } : {}),
            ...options.serviceEnv?.[name],
            PORT: String(ports[name][i]),
          };
          envs.set(`${name}/${i}`, env);
          const p = await startService(name, env);
          procs[name][i] = p;
          started.push(p);
        }),
      );
    }
    const agentHosts: string[] = [];
    await Promise.all(
      Array.from({ length: agentCount }, async (_, a) => {
        const hosts = agentHostPattern(a + 1, hostsPerAgent);
        agentHosts[a] = hosts;
        const env = {
          ...common,
          ...peers(a % replicas),
          STRATUS_DATA_DIR: join(dataDir, `agent-${a + 1}`),
          COMPUTE_HOSTS: hosts,
          COMPUTE_PHYSNETS: "rack1-*=physnet-rack1,rack2-*=physnet-rack2",
          ...options.serviceEnv?.["compute-agent"],
        };
        envs.set(`compute-agent/${a}`, env);
        const p = await startService("compute-agent", env);
        agents[a] = p;
        started.push(p);
      }),
    );
    return {
      nats,
      identity,
      identities: identityProcs,
      replicas: procs,
      agents,
      databases: owned,
      agentHosts,
      apiUrl: (i) => `http://127.0.0.1:${apiPorts[i]}`,
      async kill(name, i) {
        const list = name === "compute-agent" ? agents : name === "identity" ? identityProcs : procs[name];
        await list[i]?.stop("SIGKILL");
      },
      async restart(name, i) {
        if (name === "identity" && i === 0) {
          await identity.restart();
          identityProcs[0] = identity.process;
          return identity.process;
        }
        const p =
          name === "identity"
            ? await launchService(name, envs.get(`${name}/${i}`)!)
            : await startService(name, envs.get(`${name}/${i}`)!);
        (name === "compute-agent" ? agents : name === "identity" ? identityProcs : procs[name])[i] = p;
        started.push(p);
        return p;
      },
      async close() {
        await Promise.all(started.map((p) => p.stop("SIGTERM")));
        await nats.stop();
        for (const d of databases) await d.drop().catch(() => undefined);
        rmSync(dataDir, { recursive: true, force: true });
      },
    };
  } catch (err) {
    await Promise.all(started.map((p) => p.stop("SIGKILL")));
    await nats.stop();
    for (const d of databases) await d.drop().catch(() => undefined);
    rmSync(dataDir, { recursive: true, force: true });
    throw err;
  }
}
