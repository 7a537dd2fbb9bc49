// A real OpenStack Keystone for tests: Debian's python3-keystone under gunicorn on a free port, with
// a config dir of its own (SQLite, fernet tokens) made by keystone-manage and bootstrapped with an
// admin user, project and the admin/member/reader roles. Stopped cleanly; it also exits when the
// test process that started it dies.
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir, userInfo } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import type { TokenValidator } from "../auth/identity.js";
import { type IssuedToken, KeystoneAdmin, type PasswordAuth } from "../auth/keystone-admin.js";
import { isStratusError } from "../errors.js";
import { freePort } from "./nats-server.js";

const KEYSTONE_MANAGE = "/usr/bin/keystone-manage";
const GUNICORN = "/usr/bin/gunicorn";

/** What a test Keystone lacks on this machine (Debian packages to install), empty when nothing. */
export function keystoneMissingPackages(): string[] {
  return [
    ...(existsSync(KEYSTONE_MANAGE) ? [] : ["python3-keystone"]),
    ...(existsSync(GUNICORN) ? [] : ["gunicorn"]),
  ];
}

export interface KeystoneOptions {
  /** Keystone's [token] expiration: the lifetime of every token it issues, service tokens included. */
  tokenExpirationS?: number;
}

export type { PasswordAuth };
export type IssuedTestToken = IssuedToken;

export interface TestKeystone {
  /** Keystone's v3 root: http://127.0.0.1:<port>/v3. */
  readonly url: string;
  readonly port: number;
  readonly adminPassword: string;
  /** POST /v3/auth/tokens with a password. */
  issueToken(auth: PasswordAuth): Promise<IssuedTestToken>;
  /** DELETE /v3/auth/tokens as admin: the token is revoked. */
  revokeToken(token: string): Promise<void>;
  /** A REST call as admin (project-scoped admin token, renewed as needed); a non-2xx answer throws. */
  admin<T = unknown>(method: string, path: string, body?: unknown): Promise<T>;
  /** A user in the Default domain with roles on a project, each made as needed (its password set). */
  addUser(spec: { name: string; password: string; project: string; roles: string[] }): Promise<{
    userId: string;
    projectId: string;
  }>;
  /** Stops Keystone (SIGTERM to gunicorn, SIGKILL after 10 s) and removes its files. */
  stop(): Promise<void>;
}

// oslo.config parses sys.argv, which in a gunicorn worker holds gunicorn's own arguments: the app is
// loaded through this module, which clears them first. The thread ends Keystone when the test
// process is gone, as services do with STRATUS_EXIT_WITH_PARENT.
const WSGI_MODULE = `import os, signal, sys, threading, time
sys.argv = sys.argv[:1]
from keystone.server.wsgi import initialize_public_application
application = initialize_public_application()

def _exit_with_parent(parent):
    while True:
        time.sleep(1)
        try:
            os.kill(parent, 0)
        except OSError:
            os.kill(os.getppid(), signal.SIGTERM)
            os._exit(0)

_parent = int(os.environ.get("STRATUS_EXIT_WITH_PARENT", "0"))
if _parent > 0:
    threading.Thread(target=_exit_with_parent, args=(_parent,), daemon=True).start()
`;

function keystoneConf(dir: string, tokenExpirationS: number): string {
  return `[DEFAULT]
use_stderr = true
[database]
connection = sqlite:///${dir}/keystone.db
[token]
provider = fernet
expiration = ${tokenExpirationS}
[fernet_tokens]
key_repository = ${dir}/fernet-keys
[credential]
key_repository = ${dir}/credential-keys
[identity]
# bcrypt's cheapest cost: test passwords need no protection, and each password login is faster.
password_hash_rounds = 4
`;
}

const run = promisify(execFile);

/** Starts a Keystone on a free port; resolves once it answers GET /v3. */
export async function startKeystone(options: KeystoneOptions = {}): Promise<TestKeystone> {
  const missing = keystoneMissingPackages();
  if (missing.length > 0) {
    throw new Error(
      `a test Keystone needs Debian's ${missing.join(" and ")} (apt-get install -y ${missing.join(" ")})`,
    );
  }
  const port = await freePort();
  const url = `http://127.0.0.1:${port}/v3`;
  const adminPassword = `admin-${Math.random().toString(36).slice(2)}`;
  const dir = mkdtempSync(join(tmpdir(), "stratus-keystone-"));
  writeFileSync(join(dir, "keystone.conf"), keystoneConf(dir, options.tokenExpirationS ?? 3600));
  writeFileSync(join(dir, "stratus_keystone_wsgi.py"), WSGI_MODULE);

  const manage = (...args: string[]) =>
    run(KEYSTONE_MANAGE, ["--config-file", join(dir, "keystone.conf"), ...args], { cwd: dir });
  // Root must name the owner of the key repositories; the current user is right for anyone.
  const owner = ["--keystone-user", String(userInfo().uid), "--keystone-group", String(userInfo().gid)];
  let proc: ChildProcess | undefined;
  const output: string[] = [];
  try {
    // Write-ahead logging: with SQLite's default rollback journal, Keystone's role list leaves a read
    // open that makes the next role create fail with "database is locked".
    const walDatabase = () =>
      run("python3", [
        "-c",
        `import sqlite3; sqlite3.connect("${dir}/keystone.db").execute("PRAGMA journal_mode=WAL")`,
      ]);
    await Promise.all([
      manage("fernet_setup", ...owner),
      manage("credential_setup", ...owner),
      manage("db_sync").then(walDatabase),
    ]);
    // The server loads (seconds of Python imports) while bootstrap fills the database.
    const bootstrapped = manage(
      "bootstrap",
      "--bootstrap-password",
      adminPassword,
      "--bootstrap-public-url",
      url,
    );
    proc = spawn(
      GUNICORN,
      [
        "--chdir",
        dir,
        "--bind",
        `127.0.0.1:${port}`,
        "--workers",
        "1",
        "--graceful-timeout",
        "5",
        "stratus_keystone_wsgi:application",
      ],
      {
        cwd: dir,
        env: { ...process.env, OS_KEYSTONE_CONFIG_DIR: dir, STRATUS_EXIT_WITH_PARENT: String(process.pid) },
        stdio: ["ignore", "pipe", "pipe"],
      },
    );
    const collect = (chunk: Buffer) => {
      output.push(...chunk.toString().split("\n").filter(Boolean));
      if (output.length > 400) output.splice(0, output.length - 200);
    };
    proc.stdout?.on("data", collect);
    proc.stderr?.on("data", collect);
    await Promise.all([bootstrapped, waitForKeystone(url, proc, 120_000)]);
  } catch (err) {
    await stopProcess(proc);
    rmSync(dir, { recursive: true, force: true });
    const stderr = (err as { stderr?: string }).stderr ?? "";
    throw new Error(`Keystone did not start: ${String(err)}\n${stderr}${output.slice(-30).join("\n")}`);
  }

  const admin = new KeystoneAdmin(url, { user: "admin", password: adminPassword, project: "admin" }, () =>
    output.slice(-20).join("\n"),
  );
  return {
    url,
    port,
    adminPassword,
    issueToken: (auth) => admin.issueToken(auth),
    admin: (method, path, body) => admin.request(method, path, body),
    revokeToken: (token) => admin.revokeToken(token),
    addUser: (spec) => admin.ensureUser(spec),
    async stop() {
      await stopProcess(proc);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** What a validator makes of a token: "allowed", or the kind of the StratusError it throws. */
export async function validationOutcome(validator: TokenValidator, token: string): Promise<string> {
  try {
    await validator.validate(token);
    return "allowed";
  } catch (err) {
    if (!isStratusError(err)) throw err;
    return err.kind;
  }
}

async function waitForKeystone(url: string, proc: ChildProcess, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    if (proc.exitCode !== null || proc.signalCode !== null) throw new Error("gunicorn exited");
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(2000) });
      const body = (await res.json()) as { version?: { id?: string } };
      if (res.ok && body.version?.id?.startsWith("v3")) return;
      last = new Error(`GET ${url}: HTTP ${res.status}`);
    } catch (err) {
      last = err;
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`no answer within ${timeoutMs} ms: ${String(last)}`);
}

async function stopProcess(proc: ChildProcess | undefined): Promise<void> {
  if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => proc.once("exit", () => resolve()));
  proc.kill("SIGTERM");
  const killer = setTimeout(() => proc.kill("SIGKILL"), 10_000);
  await exited;
  clearTimeout(killer);
}
