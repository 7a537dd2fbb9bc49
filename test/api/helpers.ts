// Helpers for the api's tests: the whole mesh as processes, a REST caller, and the real openstack CLI.
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { promisify } from "node:util";
import { NetworkService } from "@stratus/contracts/network/v1";
import { PlacementService } from "@stratus/contracts/scheduler/v1/placement";
import { defaultRoles, runWithContext, serviceClient, userContext } from "@stratus/runtime";
import { type CloudEntry, cloudsYaml, registerEndpoints, stratusCatalog } from "@stratus/runtime/auth";
import { type Mesh, startMesh, type UserToken } from "@stratus/runtime/testing";

export { createAutoPrerequisites } from "../support/network-fixtures.js";

export type NetworkClient = ReturnType<typeof serviceClient<typeof NetworkService>>;

export const HOSTS = ["rack1-1", "rack1-2", "rack2-1", "rack2-2"];

/**
 * The tests' callers are written `user:project` (roles: member; user `admin`: admin) or
 * `user:project:role`; each names a real token of the mesh's identity, made on first use and kept
 * (user and project made as needed). Project ids are the identity's: `projectId(name)`.
 */
const CALLER = /^([\w.@-]+):([\w.@-]+)(?::(admin|member|reader))?$/;
/** What the callers need of a mesh (or of a cluster): its identity. */
type IdentityOf = Pick<Mesh, "identity" | "token">;
let current: IdentityOf | undefined;
const callers = new Map<string, Promise<UserToken>>();

/** Makes `mesh` the one whose identity the callers' tokens and projects come from (startApiMesh does). */
export function useMesh(mesh: IdentityOf): void {
  current = mesh;
  callers.clear();
}

function theMesh(): IdentityOf {
  if (!current) throw new Error("startApiMesh() first");
  return current;
}

/** The real token (and ids) of a caller written `user:project[:role]`. */
export function caller(spec: string): Promise<UserToken> {
  const m = CALLER.exec(spec);
  if (!m) throw new Error(`not a caller: ${spec}`);
  let token = callers.get(spec);
  if (!token) {
    const [, name, project, role] = m;
    // The identity's own bootstrap admin keeps its password: `admin` is a user of the tests'.
    const user = name === "admin" ? "test-admin" : name!;
    token = theMesh().token({
      user,
      project: project!,
      roles: [role ?? (name === "admin" ? "admin" : "member")],
    });
    callers.set(spec, token);
    token.catch(() => callers.delete(spec));
  }
  return token;
}

/** What goes in X-Auth-Token for `token`: a caller's real token, or the text itself when it names none. */
export async function tokenOf(token: string): Promise<string> {
  return CALLER.test(token) ? (await caller(token)).token : token;
}

/** The identity's id of the project named `name` (made when missing). */
export function projectId(name: string): Promise<string> {
  return theMesh().identity.admin.ensure("projects", name);
}

/** All five services, two racks of two hosts each mapped to physnet-rack1 / physnet-rack2. */
export async function startApiMesh(
  options: {
    /** More environment for every service (it overrides the defaults here). */
    env?: Record<string, string>;
    /** NATS as a cluster of this many nodes (startMesh's natsCluster). */
    natsCluster?: number;
  } = {},
): Promise<{ mesh: Mesh; net: NetworkClient }> {
  const mesh = await startMesh({
    // debug: every handled RPC is logged with its request id (the request-id test reads them).
    env: { LOG_LEVEL: "debug", ...options.env },
    ...(options.natsCluster ? { natsCluster: options.natsCluster } : {}),
    serviceEnv: {
      // Server lists are cached until the conductor says they changed: with a lifetime this long,
      // every list a test reads is fresh only if the change events work.
      api: { API_LIST_CACHE_MS: "600000" },
      "compute-agent": {
        COMPUTE_HOSTS: "rack1-[1-2],rack2-[1-2]",
        COMPUTE_PHYSNETS: "rack1-*=physnet-rack1,rack2-*=physnet-rack2",
      },
    },
  });
  useMesh(mesh);
  const net = serviceClient(NetworkService, mesh.url("network-adapter"));
  const placement = serviceClient(PlacementService, mesh.url("scheduler"));
  await until(
    "hosts registered",
    async () => {
      const names = (await placement.listResourceProviders({})).providers.map((p) => p.name);
      return HOSTS.every((h) => names.includes(h));
    },
    90_000,
  );
  return { mesh, net };
}

export function asAdmin<T>(fn: () => Promise<T>): Promise<T> {
  return runWithContext(userContext({ userId: "admin", projectId: "admin", roles: defaultRoles(true) }), fn);
}

/** A routed network owned by the project named `project`: segments on physnet-rack1 / physnet-rack2, a /24 each. */
export async function createRoutedNetwork(net: NetworkClient, projectName: string, name: string, third = 1) {
  return createRoutedNetworkOf(net, await projectId(projectName), name, third);
}

/** createRoutedNetwork for a project id as given (an api in the development mode takes names as ids). */
export function createRoutedNetworkOf(net: NetworkClient, project: string, name: string, third = 1) {
  return asAdmin(async () => {
    const { network } = await net.createNetwork({
      name,
      projectId: project,
      segments: [
        { name: "rack1", networkType: "vlan", physicalNetwork: "physnet-rack1", segmentationId: 100 + third },
        { name: "rack2", networkType: "vlan", physicalNetwork: "physnet-rack2", segmentationId: 200 + third },
      ],
    });
    const segs = network!.segments;
    await net.createSubnet({
      networkId: network!.id,
      segmentId: segs.find((s) => s.name === "rack1")!.id,
      projectId: project,
      cidr: `10.${third}.1.0/24`,
      ipVersion: 4,
    });
    await net.createSubnet({
      networkId: network!.id,
      segmentId: segs.find((s) => s.name === "rack2")!.id,
      projectId: project,
      cidr: `10.${third}.2.0/24`,
      ipVersion: 4,
    });
    return network!;
  });
}

export interface RestAnswer {
  status: number;
  headers: Headers;
  body: any;
}

/** A REST call as `token` (a caller `user:project[:role]`, default alice:p1, or a token's text; null: none). */
export async function rest(
  apiUrl: string,
  method: string,
  path: string,
  opts: {
    token?: string | null;
    /** Send `token` as written (an api in the insecure development mode takes `user:project`). */
    tokenAsIs?: boolean;
    version?: string;
    body?: unknown;
    headers?: Record<string, string>;
  } = {},
): Promise<RestAnswer> {
  const headers: Record<string, string> = { accept: "application/json", ...opts.headers };
  if (opts.token !== null) {
    const token = opts.token ?? "alice:p1";
    headers["x-auth-token"] = opts.tokenAsIs ? token : await tokenOf(token);
  }
  if (opts.version) headers["openstack-api-version"] = `compute ${opts.version}`;
  if (opts.body !== undefined) headers["content-type"] = "application/json";
  const res = await fetch(`${apiUrl}${path}`, {
    method,
    headers,
    ...(opts.body === undefined
      ? {}
      : { body: typeof opts.body === "string" ? opts.body : JSON.stringify(opts.body) }),
  });
  const text = await res.text();
  let body: any = text;
  try {
    body = text ? JSON.parse(text) : undefined;
  } catch {
    // not JSON: keep the text
  }
  return { status: res.status, headers: res.headers, body };
}

/** Polls GET /servers/{id} until the server leaves BUILD. */
export async function waitServer(apiUrl: string, id: string, token = "alice:p1", timeoutMs = 60_000) {
  return until(
    `server ${id} settled`,
    async () => {
      const r = await rest(apiUrl, "GET", `/v2.1/servers/${id}`, { token, version: "2.37" });
      return r.status === 200 && r.body.server.status !== "BUILD" ? r.body.server : undefined;
    },
    timeoutMs,
  );
}

export async function until<T>(what: string, fn: () => Promise<T | undefined | false>, timeoutMs = 30_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 150));
  }
}

const run = promisify(execFile);

/**
 * The unmodified python-openstackclient with a token of `token` (a caller, as `rest`) and the
 * compute endpoint given (the catalog's path is cli-catalog.test.ts's).
 */
export async function openstack(
  apiUrl: string,
  token: string,
  version: string,
  args: string[],
): Promise<{ stdout: string; stderr: string; code: number }> {
  const argv = [
    "--os-auth-type",
    "admin_token",
    "--os-token",
    await tokenOf(token),
    "--os-endpoint",
    `${apiUrl}/v2.1`,
    "--os-compute-api-version",
    version,
    ...args,
  ];
  try {
    const { stdout, stderr } = await run("openstack", argv, {
      env: { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: process.env.HOME ?? "/tmp" },
      timeout: 60_000,
    });
    return { stdout, stderr, code: 0 };
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string; code?: number };
    return { stdout: e.stdout ?? "", stderr: e.stderr ?? "", code: typeof e.code === "number" ? e.code : 1 };
  }
}

/** A cloud of a test's clouds.yaml: `user` (made with a password of its own) with `role` on `project`. */
export interface CliUser {
  cloud: string;
  user: string;
  project: string;
  role: "admin" | "member" | "reader";
}

/**
 * What `npm start` does for the CLI, for `users` of the mesh's identity: the catalog (identity,
 * compute at the compute edge, network at the Networking API) registered with registerEndpoints,
 * each user made with a password, and a clouds.yaml of password-auth clouds written to `dir`
 * (cloudsYaml: nothing names an endpoint; the CLI finds them in the catalog). Returns its path.
 * The users must not be the callers `caller` makes (that would set their passwords again).
 */
export async function writeCliClouds(mesh: Mesh, dir: string, users: readonly CliUser[]): Promise<string> {
  const admin = mesh.identity.admin;
  await registerEndpoints(
    admin,
    "RegionOne",
    stratusCatalog({ identity: mesh.identity.restUrl, compute: mesh.apiUrl, network: mesh.networkApiUrl }),
  );
  const clouds: CloudEntry[] = [];
  for (const u of users) {
    const password = `pw-${randomBytes(12).toString("hex")}`;
    await admin.ensureUser({ name: u.user, password, project: u.project, roles: [u.role] });
    clouds.push({
      name: u.cloud,
      authUrl: `${mesh.identity.restUrl}/v3`,
      username: u.user,
      password,
      projectName: u.project,
      region: "RegionOne",
    });
  }
  const file = join(dir, "clouds.yaml");
  writeFileSync(file, cloudsYaml(clouds), { mode: 0o600 });
  return file;
}

/**
 * `openstack --os-cloud <cloud> <args>` (the unmodified CLI) with `cloudsFile` as its only
 * configuration: its exit code and output, a failure included.
 */
export async function osCloud(
  cloudsFile: string,
  cloud: string,
  args: string[],
): Promise<{ stdout: string; stderr: string; code: number }> {
  try {
    const { stdout, stderr } = await run("/usr/bin/openstack", ["--os-cloud", cloud, ...args], {
      env: {
        PATH: process.env.PATH ?? "/usr/bin:/bin",
        HOME: dirname(cloudsFile),
        OS_CLIENT_CONFIG_FILE: cloudsFile,
      },
      timeout: 90_000,
    });
    return { stdout, stderr, code: 0 };
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string; code?: number };
    return { stdout: e.stdout ?? "", stderr: e.stderr ?? "", code: typeof e.code === "number" ? e.code : 1 };
  }
}
