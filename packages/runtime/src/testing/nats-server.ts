import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect, type NatsConnection } from "nats";
import { natsConnectionOptions, readNkeySeedFile } from "../nats.js";
import { natsServerConfig, roleKeys, seedFileOf, writePrivateFile } from "../nats-server-config.js";
import { NATS_ROLES, type NatsRole } from "../nats-subjects.js";

/** Binds port on 127.0.0.1 for a moment: resolves true when it was free. */
function probe(port: number): Promise<boolean> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once("error", (err: NodeJS.ErrnoException) =>
      err.code === "EADDRINUSE" || err.code === "EACCES" ? resolve(false) : reject(err),
    );
    srv.listen(port, "127.0.0.1", () => srv.close(() => resolve(true)));
  });
}

/** Ports each vitest worker hands out: its own block, below the kernel's ephemeral range. */
const BLOCK = 1000;
const BLOCKS_FROM = 20_000;
let nextInBlock = (process.pid * 7) % BLOCK;

/**
 * A port that is free now, for a process about to be started. The port is released before the
 * process binds it, so two callers must never be handed the same one: under vitest each worker
 * takes its ports from a block of its own (VITEST_POOL_ID), away from the ephemeral ports the
 * kernel gives to listen(0) and to every outgoing connection. Elsewhere the kernel picks.
 */
export async function freePort(): Promise<number> {
  // STRATUS_TEST_PORT_BLOCKS shifts the blocks, so that two suites run at once on one machine
  // (two checkouts) do not hand out the same ports.
  const pool = Number(process.env.VITEST_POOL_ID) + Number(process.env.STRATUS_TEST_PORT_BLOCKS ?? 0);
  if (Number.isInteger(pool) && pool > 0 && BLOCKS_FROM + pool * BLOCK <= 32_768) {
    const base = BLOCKS_FROM + (pool - 1) * BLOCK;
    for (let tries = 0; tries < BLOCK; tries++) {
      const port = base + (nextInBlock++ % BLOCK);
      if (await probe(port)) return port;
    }
    throw new Error(`no free port in ${base}..${base + BLOCK - 1}`);
  }
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

export async function waitForPort(port: number, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect(port, "127.0.0.1");
      s.once("connect", () => {
        s.destroy();
        resolve(true);
      });
      s.once("error", () => resolve(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`port ${port} did not open within ${timeoutMs} ms`);
}

export function natsServerBinary(): string {
  for (const candidate of [
    process.env.NATS_SERVER_BIN,
    "/usr/sbin/nats-server",
    "/usr/bin/nats-server",
    "/usr/local/bin/nats-server",
  ]) {
    if (candidate && existsSync(candidate)) return candidate;
  }
  throw new Error(
    "nats-server not found: install it (Debian: apt-get install -y nats-server) or set NATS_SERVER_BIN",
  );
}

export interface TestNats {
  readonly url: string;
  readonly port: number;
  /** The server process's pid (undefined once it has exited). */
  readonly pid: number | undefined;
  /** The file holding a role's nkey seed (what a service gets as NATS_NKEY_SEED_FILE). */
  seedFile(role: NatsRole): string;
  /** A connection with a role's credential: `tools` to watch events, a service's role to act as it. */
  connect(role: NatsRole): Promise<NatsConnection>;
  /** Runs `fn` when the server is stopped, first (what the harness started on it: its identity). */
  beforeStop(fn: () => Promise<void>): void;
  stop(): Promise<void>;
  /** Kills the server (SIGKILL) and starts it again on the same port, store and configuration. */
  restart(): Promise<void>;
}

/** The servers startNats runs in this process, by URL: startService hands their credentials out. */
const running = new Map<string, TestNats>();

/** The harness's server at natsUrl, if it is one. */
export function harnessNats(natsUrl: string | undefined): TestNats | undefined {
  return natsUrl === undefined ? undefined : running.get(natsUrl);
}

/**
 * The seed file of the service's role when natsUrl is a server of this harness, so that a service
 * started on it connects as its role with no more said; undefined for any other URL or name.
 */
export function harnessSeedFile(natsUrl: string | undefined, service: string): string | undefined {
  const nats = harnessNats(natsUrl);
  const role = NATS_ROLES.find((r) => r === service);
  return nats && role ? nats.seedFile(role) : undefined;
}

/** One nats-server process of a configuration file: started (once its port opens) and killed. */
function natsProcess(config: string, port: number) {
  let proc: ChildProcess | undefined;
  return {
    get pid() {
      return proc?.exitCode === null && proc.signalCode === null ? proc.pid : undefined;
    },
    async start(): Promise<void> {
      proc = spawn(natsServerBinary(), ["-c", config], { stdio: "ignore" });
      await waitForPort(port);
    },
    async kill(signal: NodeJS.Signals = "SIGKILL"): Promise<void> {
      const p = proc;
      if (!p || p.exitCode !== null || p.signalCode !== null) return;
      await new Promise<void>((resolve) => {
        p.once("exit", () => resolve());
        p.kill(signal);
      });
    },
  };
}

/**
 * A private nats-server with JetStream, on a free port, with its store in a temp dir, configured
 * as `npm start` configures its own: from the NATS permission table, one nkey per role (every
 * service's and `tools`), anonymous clients refused.
 */
export async function startNats(): Promise<TestNats> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), "stratus-nats-"));
  const credentials = join(dir, "credentials");
  const keys = roleKeys(credentials, NATS_ROLES, { create: true });
  const config = join(dir, "nats-server.conf");
  writePrivateFile(config, natsServerConfig({ host: "127.0.0.1", port, storeDir: dir, keys }));
  const server = natsProcess(config, port);
  await server.start();
  const url = `nats://127.0.0.1:${port}`;
  const stopHooks: (() => Promise<void>)[] = [];
  const nats: TestNats = {
    url,
    port,
    get pid() {
      return server.pid;
    },
    seedFile: (role) => seedFileOf(credentials, role),
    connect: (role) =>
      connect({
        servers: url,
        ...natsConnectionOptions(role, readNkeySeedFile(seedFileOf(credentials, role))),
      }),
    beforeStop: (fn) => stopHooks.push(fn),
    async stop() {
      running.delete(url);
      // What runs on this server goes first; its failure to stop must not keep the server up.
      for (const fn of stopHooks.splice(0).reverse()) await fn().catch(() => undefined);
      await server.kill("SIGTERM");
      rmSync(dir, { recursive: true, force: true });
    },
    async restart() {
      await server.kill();
      await server.start();
    },
  };
  running.set(url, nats);
  return nats;
}

export interface TestNatsCluster extends TestNats {
  /** Each node's client URL, in order. */
  readonly nodeUrls: readonly string[];
  /** Each node's process id (undefined while it is down). */
  readonly nodePids: readonly (number | undefined)[];
  /** Kills one node (SIGKILL), as a crash. */
  killNode(index: number): Promise<void>;
  /** Starts a killed node again on its ports, store and configuration. */
  startNode(index: number): Promise<void>;
}

/**
 * `size` nats-servers with JetStream routed into one cluster, each configured as startNats
 * configures its server (the same keys and permissions for every node). `url` lists every node,
 * so a client fails over when one goes. Resolves once JetStream has a meta leader.
 */
export async function startNatsCluster(size = 3): Promise<TestNatsCluster> {
  const dir = mkdtempSync(join(tmpdir(), "stratus-nats-cluster-"));
  const credentials = join(dir, "credentials");
  const keys = roleKeys(credentials, NATS_ROLES, { create: true });
  const ports: { port: number; routePort: number }[] = [];
  for (let i = 0; i < size; i++) ports.push({ port: await freePort(), routePort: await freePort() });
  const routes = ports.map((n) => `nats-route://127.0.0.1:${n.routePort}`);
  const nodes = ports.map((n, i) => {
    const config = join(dir, `node-${i}.conf`);
    writePrivateFile(
      config,
      natsServerConfig({
        host: "127.0.0.1",
        port: n.port,
        storeDir: join(dir, `store-${i}`),
        keys,
        cluster: { name: "stratus-test", serverName: `n${i}`, port: n.routePort, routes },
      }),
    );
    return { port: n.port, server: natsProcess(config, n.port) };
  });
  const startNode = (i: number) => nodes[i]!.server.start();
  const killNode = (i: number) => nodes[i]!.server.kill();
  await Promise.all(nodes.map((_, i) => startNode(i)));
  const nodeUrls = nodes.map((n) => `nats://127.0.0.1:${n.port}`);
  const url = nodeUrls.join(",");
  const connectAs = (role: NatsRole) =>
    connect({
      servers: nodeUrls,
      ...natsConnectionOptions(role, readNkeySeedFile(seedFileOf(credentials, role))),
    });
  // JetStream answers once the nodes have elected a meta leader (asked as a role that may ask).
  const probeConn = await connectAs("conductor");
  try {
    const deadline = Date.now() + 30_000;
    for (;;) {
      try {
        await (await probeConn.jetstreamManager()).getAccountInfo();
        break;
      } catch (err) {
        if (Date.now() > deadline) throw err;
        await new Promise((r) => setTimeout(r, 200));
      }
    }
  } finally {
    await probeConn.close();
  }
  const stopHooks: (() => Promise<void>)[] = [];
  const cluster: TestNatsCluster = {
    url,
    port: nodes[0]!.port,
    nodeUrls,
    get pid() {
      return nodes[0]!.server.pid;
    },
    get nodePids() {
      return nodes.map((n) => n.server.pid);
    },
    seedFile: (role) => seedFileOf(credentials, role),
    connect: connectAs,
    beforeStop: (fn) => stopHooks.push(fn),
    killNode,
    startNode,
    async stop() {
      running.delete(url);
      for (const fn of stopHooks.splice(0).reverse()) await fn().catch(() => undefined);
      await Promise.all(nodes.map((_, i) => killNode(i)));
      rmSync(dir, { recursive: true, force: true });
    },
    async restart() {
      await Promise.all(nodes.map((_, i) => killNode(i)));
      await Promise.all(nodes.map((_, i) => startNode(i)));
    },
  };
  running.set(url, cluster);
  return cluster;
}
