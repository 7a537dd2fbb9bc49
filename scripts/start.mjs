#!/usr/bin/env node
// npm start: brings the whole Stratus mesh up on this machine.
// Installs what is missing, makes each service's NATS credential (an nkey, kept under
// .stratus/nats/credentials) and the nats-server configuration that allows each role only its own
// subjects, starts a private nats-server with it (JetStream, data under .stratus/) unless NATS_URL
// is set, starts the identity service (its admin password kept in .stratus/identity), makes each
// service's user there (stratus-<service>, its password kept in .stratus/identity/credentials),
// starts the five other services as child processes with prefixed readable logs, each with its
// NATS and identity credentials, waits until each reports SERVING, seeds the demo cloud, prints
// the endpoints; Ctrl-C stops everything.
import { execSync, spawn, spawnSync } from "node:child_process";
import { chmodSync, existsSync, mkdirSync } from "node:fs";
import http2 from "node:http2";
import net from "node:net";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const stateDir = join(root, ".stratus");
const children = [];
let stopping = false;

const color = {
  api: 36,
  conductor: 35,
  scheduler: 33,
  "network-adapter": 32,
  "compute-agent": 34,
  identity: 31,
  nats: 90,
  seed: 37,
};
function say(name, text) {
  process.stdout.write(`\x1b[${color[name] ?? 37}m${name.padEnd(15)}\x1b[0m| ${text}\n`);
}

/** Turns a pino JSON line into "level msg key=value …"; other lines pass through. */
function readable(line) {
  try {
    const o = JSON.parse(line);
    const { level, time, service, pid, msg, request_id, ...rest } = o;
    const extra = Object.entries(rest)
      .map(([k, v]) => `${k}=${typeof v === "string" ? v : JSON.stringify(v)}`)
      .join(" ");
    return `${String(level).padEnd(5)} ${msg ?? ""}${request_id ? ` [${request_id}]` : ""}${extra ? ` ${extra}` : ""}`;
  } catch {
    return line;
  }
}

function pipe(name, stream) {
  let buf = "";
  stream.on("data", (chunk) => {
    buf += chunk;
    let i = buf.indexOf("\n");
    while (i >= 0) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      if (line.trim()) say(name, readable(line));
      i = buf.indexOf("\n");
    }
  });
}

function ensureInstalled() {
  const marker = join(root, "node_modules", ".package-lock.json");
  if (existsSync(join(root, "node_modules", "tsx")) && existsSync(marker)) return;
  say("seed", "installing dependencies (npm ci) …");
  execSync("npm ci --no-audit --no-fund", { cwd: root, stdio: "inherit" });
}

function findNatsServer() {
  for (const p of [
    process.env.NATS_SERVER_BIN,
    "/usr/sbin/nats-server",
    "/usr/bin/nats-server",
    "/usr/local/bin/nats-server",
  ]) {
    if (p && existsSync(p)) return p;
  }
  const which = spawnSync("sh", ["-c", "command -v nats-server"], { encoding: "utf8" });
  if (which.status === 0 && which.stdout.trim()) return which.stdout.trim();
  return undefined;
}

function installNatsServer() {
  const apt = spawnSync("sh", ["-c", "command -v apt-get"], { encoding: "utf8" }).status === 0;
  if (apt) {
    say("nats", "nats-server not found: installing it with apt-get …");
    const sudo = process.getuid?.() === 0 ? "" : "sudo ";
    const r = spawnSync(
      "sh",
      [
        "-c",
        `${sudo}apt-get install -y nats-server || (${sudo}apt-get update && ${sudo}apt-get install -y nats-server)`,
      ],
      {
        stdio: "inherit",
      },
    );
    if (r.status === 0) return findNatsServer();
  }
  console.error(
    "nats-server is not installed and could not be installed automatically.\n" +
      "Install it (Debian/Ubuntu: apt-get install -y nats-server; macOS: brew install nats-server;\n" +
      "or download from https://github.com/nats-io/nats-server/releases) or set NATS_URL to a running server.",
  );
  process.exit(1);
}

function portOpen(port, host = "127.0.0.1") {
  return new Promise((resolve) => {
    const s = net.connect(port, host);
    s.once("connect", () => {
      s.destroy();
      resolve(true);
    });
    s.once("error", () => resolve(false));
  });
}

async function freePort() {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/** A module of the runtime (TypeScript, loaded through tsx once installed). */
async function runtimeModule(file) {
  const { tsImport } = await import("tsx/esm/api");
  return tsImport(pathToFileURL(join(root, "packages/runtime/src", file)).href, import.meta.url);
}

/** The runtime's NATS configuration generator, and the roles it is made for. */
async function natsConfiguration() {
  return {
    ...(await runtimeModule("nats-server-config.ts")),
    ...(await runtimeModule("nats-permissions.ts")),
    ...(await runtimeModule("nats-subjects.ts")),
  };
}

/**
 * Each service role's nkey: from NATS_CREDENTIALS_DIR (an operator's, `<role>.nk` each) or made on
 * first start under .stratus/nats/credentials and kept. Delete a file to rotate that credential.
 */
function serviceKeys(config, natsDir) {
  const given = process.env.NATS_CREDENTIALS_DIR;
  const dir = given ?? join(natsDir, "credentials");
  return config.roleKeys(dir, config.SERVICE_ROLES, { create: !given });
}

/** Starts the private nats-server (or describes what an external one needs); returns its URL and the keys. */
async function startNats() {
  const config = await natsConfiguration();
  const dir = join(stateDir, "nats");
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  chmodSync(dir, 0o700);
  const keys = serviceKeys(config, dir);
  if (process.env.NATS_URL) {
    const authorization = join(dir, "authorization.conf");
    config.writePrivateFile(authorization, config.natsAuthorizationConfig(keys));
    say(
      "nats",
      `using NATS_URL=${process.env.NATS_URL}; each service connects with its nkey (${dirname(keys[0].seedFile)})`,
    );
    say(
      "nats",
      `its servers must know those keys and their permissions: copy ${authorization} beside each server's configuration file, add the line "include authorization.conf" to it (JetStream enabled) and reload (nats-server --signal reload)`,
    );
    return { url: process.env.NATS_URL, keys };
  }
  const bin = findNatsServer() ?? installNatsServer();
  const preferred = Number(process.env.STRATUS_NATS_PORT ?? 4223);
  const port = (await portOpen(preferred)) ? await freePort() : preferred;
  const conf = join(dir, "nats-server.conf");
  config.writePrivateFile(conf, config.natsServerConfig({ host: "127.0.0.1", port, storeDir: dir, keys }));
  const child = spawn(bin, ["-c", conf], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  children.push({ name: "nats", child });
  pipe("nats", child.stdout);
  pipe("nats", child.stderr);
  for (let i = 0; i < 100 && !(await portOpen(port)); i++) await new Promise((r) => setTimeout(r, 100));
  say(
    "nats",
    `private nats-server with JetStream on nats://127.0.0.1:${port} (data, configuration and credentials in .stratus/nats)`,
  );
  return { url: `nats://127.0.0.1:${port}`, keys };
}

const IDENTITY = { name: "identity", port: 9105, restPort: 5000 };
const SERVICES = [
  { name: "scheduler", port: 9102 },
  { name: "network-adapter", port: 9103 },
  { name: "conductor", port: 9101 },
  { name: "compute-agent", port: 9104 },
  { name: "api", port: 9100 },
];

/** grpc.health.v1 Check over the Connect protocol (JSON on HTTP/2), with node's own http2. */
function healthCheck(url) {
  return new Promise((resolve) => {
    const session = http2.connect(url);
    session.on("error", () => resolve(false));
    const req = session.request({
      ":method": "POST",
      ":path": "/grpc.health.v1.Health/Check",
      "content-type": "application/json",
    });
    let body = "";
    req.setEncoding("utf8");
    req.on("data", (d) => {
      body += d;
    });
    req.on("end", () => {
      session.close();
      try {
        resolve(JSON.parse(body).status === "SERVING");
      } catch {
        resolve(false);
      }
    });
    req.on("error", () => {
      session.destroy();
      resolve(false);
    });
    req.setTimeout(1000, () => req.close());
    req.end(JSON.stringify({ service: "" }));
  });
}

async function waitHealthy(name, url, child) {
  const deadline = Date.now() + 120_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`${name} exited with code ${child.exitCode}`);
    if (await healthCheck(url)) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`${name} did not become healthy at ${url}`);
}

function stopAll(code = 0) {
  if (stopping) return;
  stopping = true;
  say("seed", "stopping …");
  const live = children.filter((c) => c.child.exitCode === null && c.child.signalCode === null);
  let left = live.length;
  if (!left) process.exit(code);
  // Services first, NATS last.
  const services = live.filter((c) => c.name !== "nats");
  const nats = live.filter((c) => c.name === "nats");
  const done = () => {
    if (--left === 0) process.exit(code);
  };
  let svcLeft = services.length;
  const afterServices = () => {
    for (const c of nats) {
      c.child.once("exit", done);
      c.child.kill("SIGTERM");
    }
  };
  if (!svcLeft) afterServices();
  for (const c of services) {
    c.child.once("exit", () => {
      done();
      if (--svcLeft === 0) afterServices();
    });
    c.child.kill("SIGTERM");
  }
  // Not unref'd: this launcher must outlive any service that ignores SIGTERM, and kill it.
  setTimeout(() => {
    for (const c of live) c.child.kill("SIGKILL");
    process.exit(code);
  }, 15_000);
}

async function main() {
  const started = Date.now();
  ensureInstalled();
  mkdirSync(stateDir, { recursive: true });
  process.on("SIGINT", () => stopAll(0));
  process.on("SIGTERM", () => stopAll(0));
  const { url: natsUrl, keys: natsKeys } = await startNats();
  const env = {
    ...process.env,
    NATS_URL: natsUrl,
    STRATUS_DATA_DIR: process.env.STRATUS_DATA_DIR ?? join(stateDir, "data"),
    CONDUCTOR_URL: "http://127.0.0.1:9101",
    SCHEDULER_URL: "http://127.0.0.1:9102",
    NETWORK_URL: "http://127.0.0.1:9103",
    COMPUTE_AGENT_URL: "http://127.0.0.1:9104",
    COMPUTE_HOSTS: process.env.COMPUTE_HOSTS ?? "rack1-[1-4],rack2-[1-4]",
    // The demo cloud: each rack is one segment of the routed provider network.
    COMPUTE_PHYSNETS: process.env.COMPUTE_PHYSNETS ?? "rack1-*=physnet-rack1,rack2-*=physnet-rack2",
  };
  for (const [name, port] of [
    [IDENTITY.name, IDENTITY.restPort],
    ...[IDENTITY, ...SERVICES].map((s) => [s.name, s.port]),
  ]) {
    if (await portOpen(port)) {
      console.error(`port ${port} (${name}) is already in use: is another Stratus running?`);
      stopAll(1);
      return;
    }
  }
  const launch = (s, extraEnv) => {
    const child = spawn(
      process.execPath,
      ["--import", "tsx", join(root, "services", s.name, "src", "main.ts")],
      {
        cwd: root,
        env: {
          ...env,
          ...extraEnv,
          PORT: String(s.port),
          NATS_NKEY_SEED_FILE: natsKeys.find((k) => k.role === s.name).seedFile,
        },
        stdio: ["ignore", "pipe", "pipe"],
      },
    );
    children.push({ name: s.name, child });
    pipe(s.name, child.stdout);
    pipe(s.name, child.stderr);
    child.once("exit", (code, signal) => {
      if (!stopping) {
        say(s.name, `exited (code ${code}, signal ${signal}); stopping the mesh`);
        stopAll(1);
      }
    });
    return waitHealthy(s.name, `http://127.0.0.1:${s.port}`, child);
  };
  // The identity first: every other service logs in to it as its service user.
  const identityDir = join(stateDir, "identity");
  mkdirSync(identityDir, { recursive: true, mode: 0o700 });
  chmodSync(identityDir, 0o700);
  const auth = await runtimeModule("auth/index.ts");
  const adminPasswordFile = join(identityDir, "admin.password");
  const identityUrl = `http://127.0.0.1:${IDENTITY.restPort}`;
  await launch(IDENTITY, {
    IDENTITY_PORT: String(IDENTITY.restPort),
    IDENTITY_BOOTSTRAP_ADMIN_PASSWORD: auth.keptPassword(adminPasswordFile),
  });
  const admin = new auth.KeystoneAdmin(`${identityUrl}/v3`, {
    user: "admin",
    password: auth.readPasswordFile(adminPasswordFile),
    project: "admin",
  });
  const credentials = join(identityDir, "credentials");
  const passwordFiles = await auth.ensureServiceUsers(
    admin,
    SERVICES.map((s) => s.name),
    credentials,
  );
  say("identity", `service users stratus-<service> ready (passwords in ${credentials})`);
  // The others at once; each waits for its peers by retrying, so the slowest (PGlite init) sets the pace.
  await Promise.all(
    SERVICES.map((s) =>
      launch(s, {
        IDENTITY_URL: identityUrl,
        IDENTITY_RPC_URL: `http://127.0.0.1:${IDENTITY.port}`,
        SERVICE_PASSWORD_FILE: passwordFiles[s.name],
      }),
    ),
  );
  const healthyAfter = ((Date.now() - started) / 1000).toFixed(1);
  say("seed", `all six services SERVING after ${healthyAfter} s`);

  const seed = join(root, "scripts", "seed-demo.ts");
  if (existsSync(seed)) {
    const r = spawn(process.execPath, ["--import", "tsx", seed], {
      cwd: root,
      env: { ...env, IDENTITY_URL: identityUrl, ADMIN_PASSWORD_FILE: adminPasswordFile },
      stdio: ["ignore", "pipe", "pipe"],
    });
    pipe("seed", r.stdout);
    pipe("seed", r.stderr);
    const code = await new Promise((res) => r.once("exit", res));
    if (code !== 0) say("seed", `demo seeding failed (exit ${code}); the mesh stays up`);
  }

  const apiPort = process.env.API_PORT ?? 8774;
  const networkApiPort = process.env.NETWORK_API_PORT ?? 9696;
  process.stdout.write(`
Stratus is up (${healthyAfter} s to all healthy).
  compute API (Nova-compatible)  http://127.0.0.1:${apiPort}/v2.1
  Networking API v2.0 (Neutron)  http://127.0.0.1:${networkApiPort}/v2.0
  api RPC (health/reflection)    http://127.0.0.1:9100
  conductor                      http://127.0.0.1:9101   stratus.compute.v1.ConductorService
  scheduler                      http://127.0.0.1:9102   stratus.scheduler.v1.{PlacementService,SchedulerService}
  network-adapter                http://127.0.0.1:9103   stratus.network.v1.NetworkService
  compute-agent                  http://127.0.0.1:9104   stratus.computeagent.v1.ComputeAgentService
  identity (Keystone v3)         ${identityUrl}/v3   (admin's password in ${adminPasswordFile})
  identity RPC                   http://127.0.0.1:${IDENTITY.port}   stratus.identity.v1.IdentityService
  NATS                           ${natsUrl}
Press Ctrl-C to stop.
`);
}

main().catch((err) => {
  console.error(err);
  stopAll(1);
});
