import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { Health, HealthCheckResponse_ServingStatus } from "@stratus/contracts/grpc/health/v1";
import { SERVICE_ROLES, type ServiceRole } from "../nats-subjects.js";
import { PID_HEADER } from "../rpc/health.js";
import { freePort, harnessSeedFile } from "./nats-server.js";

/** The repository root (where package.json with workspaces lives). */
export const repoRoot = (() => {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, "services")) || !existsSync(join(dir, "proto"))) {
    const up = dirname(dir);
    if (up === dir) throw new Error("repository root not found");
    dir = up;
  }
  return dir;
})();

/** The services a test can start: those of the mesh. */
export const SERVICE_NAMES = SERVICE_ROLES;
export type ServiceName = ServiceRole;

export interface ServiceProcess {
  readonly name: string;
  readonly port: number;
  readonly url: string;
  readonly proc: ChildProcess;
  /** Every line the process wrote to stdout and stderr so far. */
  readonly output: string[];
  stop(signal?: NodeJS.Signals): Promise<number | null>;
  exited: Promise<number | null>;
}

/**
 * Spawns services/<name>/src/main.ts under tsx with the given environment. STRATUS_SERVICE_NODE_ARGS
 * (space-separated) adds Node flags NODE_OPTIONS refuses, e.g. "--cpu-prof --cpu-prof-dir=/tmp/p".
 * On a NATS of this harness (startNats) the service gets its role's credential unless env names one.
 */
export function spawnService(
  name: string,
  env: Record<string, string>,
  args: string[] = [],
  /** The checkout whose service runs (another version's, for an upgrade test); default this one. */
  root = repoRoot,
): Omit<ServiceProcess, "url" | "port"> {
  const entry = resolve(root, "services", name, "src", "main.ts");
  const nodeArgs = (env.STRATUS_SERVICE_NODE_ARGS ?? process.env.STRATUS_SERVICE_NODE_ARGS ?? "")
    .split(" ")
    .filter(Boolean);
  const proc = spawn(process.execPath, [...nodeArgs, "--import", "tsx", entry, ...args], {
    cwd: root,
    env: {
      ...process.env,
      LOG_LEVEL: "info",
      ...withHarnessCredential(name, env),
      STRATUS_EXIT_WITH_PARENT: String(process.pid),
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const output: string[] = [];
  const collect = (chunk: Buffer) => {
    for (const line of chunk.toString().split("\n")) if (line) output.push(line);
  };
  proc.stdout?.on("data", collect);
  proc.stderr?.on("data", collect);
  const exited = new Promise<number | null>((res) => proc.once("exit", (code) => res(code)));
  return {
    name,
    proc,
    output,
    exited,
    async stop(signal: NodeJS.Signals = "SIGTERM") {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill(signal);
      return exited;
    },
  };
}

function withHarnessCredential(name: string, env: Record<string, string>): Record<string, string> {
  const seedFile = env.NATS_NKEY_SEED_FILE ?? harnessSeedFile(env.NATS_URL, name);
  return seedFile ? { ...env, NATS_NKEY_SEED_FILE: seedFile } : env;
}

/**
 * Waits until the service at url reports SERVING. With pid, only an answer from that process
 * counts: a port handed out free can be taken by another test's process before ours binds it, and
 * that stranger would answer the health check too.
 */
export async function waitForServing(
  url: string,
  timeoutMs = 30_000,
  exited?: Promise<unknown>,
  pid?: number,
  /** For an https:// url: the CA its certificate chains to. */
  ca?: Buffer,
): Promise<void> {
  const client = createClient(
    Health,
    createConnectTransport({ baseUrl: url, httpVersion: "2", ...(ca ? { nodeOptions: { ca } } : {}) }),
  );
  const deadline = Date.now() + timeoutMs;
  let dead = false;
  void exited?.then(() => {
    dead = true;
  });
  let last: unknown;
  while (Date.now() < deadline && !dead) {
    try {
      let answeredBy: string | null = null;
      const res = await client.check(
        { service: "" },
        { timeoutMs: 1000, onHeader: (h) => (answeredBy = h.get(PID_HEADER)) },
      );
      if (pid !== undefined && answeredBy !== String(pid)) {
        last = new Error(`port answered by process ${answeredBy ?? "unknown"}, not ours (${pid})`);
      } else if (res.status === HealthCheckResponse_ServingStatus.SERVING) return;
    } catch (err) {
      last = err;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${url} not serving${dead ? " (process exited)" : ""}: ${String(last)}`);
}

/**
 * Starts a service on a free port with exactly `env` and waits until it reports SERVING (the
 * harness's startService, start-service.ts, adds the service's credentials first). With
 * TLS_CERT_FILE in `env` its url is https:// (checked with the CA of TLS_CA_FILE).
 */
export async function launchService(
  name: string,
  env: Record<string, string>,
  /** The checkout whose service runs (spawnService). */
  root = repoRoot,
): Promise<ServiceProcess> {
  const port = env.PORT ? Number(env.PORT) : await freePort();
  const p = spawnService(name, { ...env, PORT: String(port) }, [], root);
  const url = `${env.TLS_CERT_FILE ? "https" : "http"}://127.0.0.1:${port}`;
  const ca = env.TLS_CA_FILE ? readFileSync(env.TLS_CA_FILE) : undefined;
  try {
    await waitForServing(url, 60_000, p.exited, p.proc.pid, ca);
  } catch (err) {
    await p.stop("SIGKILL");
    throw new Error(`${name} did not start: ${String(err)}\n${p.output.slice(-30).join("\n")}`);
  }
  return { ...p, port, url };
}

/**
 * Writes each labelled output to `<dir>/<label>.log` (the directory made if missing): how a test
 * or a benchmark keeps its processes' output when an environment variable names a directory.
 * Nothing is written when `dir` is unset or empty.
 */
export function keepOutputs(
  dir: string | undefined,
  outputs: Iterable<readonly [label: string, lines: readonly string[]]>,
): void {
  if (!dir) return;
  mkdirSync(dir, { recursive: true });
  for (const [label, lines] of outputs) writeFileSync(join(dir, `${label}.log`), `${lines.join("\n")}\n`);
}
