import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

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
  stop(): Promise<void>;
  /** Kills the server (SIGKILL) and starts it again on the same port and store. */
  restart(): Promise<void>;
}

/** A private nats-server with JetStream, on a free port, with its store in a temp dir. */
export async function startNats(): Promise<TestNats> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), "stratus-nats-"));
  let proc: ChildProcess | undefined;
  const launch = async () => {
    proc = spawn(natsServerBinary(), ["-a", "127.0.0.1", "-p", String(port), "-js", "-sd", dir], {
      stdio: "ignore",
    });
    await waitForPort(port);
  };
  const kill = async (signal: NodeJS.Signals) => {
    const p = proc;
    if (!p || p.exitCode !== null) return;
    await new Promise<void>((resolve) => {
      p.once("exit", () => resolve());
      p.kill(signal);
    });
  };
  await launch();
  return {
    url: `nats://127.0.0.1:${port}`,
    port,
    get pid() {
      return proc?.exitCode === null ? proc.pid : undefined;
    },
    async stop() {
      await kill("SIGTERM");
      rmSync(dir, { recursive: true, force: true });
    },
    async restart() {
      await kill("SIGKILL");
      await launch();
    },
  };
}
