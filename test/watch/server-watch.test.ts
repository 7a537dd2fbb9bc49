// The live build-progress stream (issue 25): ServerWatchService on the api's RPC port, and its
// Server-Sent Events form on the REST edge, against the real mesh. Every state change of 100
// concurrent builds reaches a watcher, none missed and none out of order per server; a watcher
// that reconnects mid-build from its last cursor misses nothing and sees nothing twice; a watch
// without a token is refused, and nobody sees another project's servers. Everything the mesh
// publishes meanwhile is on a subject events.proto declares for its message.
import { execFile } from "node:child_process";
import { randomUUID } from "node:crypto";
import { join } from "node:path";
import { promisify } from "node:util";
import { fromBinary } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { ConductorService, NetworkMode } from "@stratus/contracts/compute/v1";
import { ServerWatchService, type WatchServersResponse } from "@stratus/contracts/compute/v1/server-watch";
import { PlacementService } from "@stratus/contracts/scheduler/v1/placement";
import { serviceClient } from "@stratus/runtime";
import { type Mesh, repoRoot, startMesh } from "@stratus/runtime/testing";
import type { NatsConnection } from "nats";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { declarationOf } from "../../packages/runtime/src/nats-subjects.js";
import { until } from "../conductor/helpers.js";

const run = promisify(execFile);
const HOSTS = 20;
/** What a build that goes straight to ACTIVE writes, in order (vm_state/task_state). */
const BUILD_STEPS = ["building/scheduling", "building/spawning", "active/"];

let mesh: Mesh;
let tools: NatsConnection;
const seenSubjects: { subject: string; data: Uint8Array }[] = [];

beforeAll(async () => {
  mesh = await startMesh({
    services: ["scheduler", "network-adapter", "conductor", "compute-agent", "api"],
    serviceEnv: {
      conductor: { QUOTA_INSTANCES: "1000", QUOTA_CORES: "1000", QUOTA_RAM_MB: "10000000" },
      // Builds take a while, so that a watcher can drop out while they run.
      "compute-agent": { COMPUTE_HOSTS: `watch-[1-${HOSTS}]`, SPAWN_DELAY_MS: "150" },
    },
  });
  const placement = serviceClient(PlacementService, mesh.url("scheduler"));
  await until(
    "hosts registered",
    async () => (await placement.listResourceProviders({})).providers.length >= HOSTS,
    90_000,
  );
  tools = await mesh.nats.connect("tools");
  const sub = tools.subscribe("stratus.>");
  void (async () => {
    for await (const m of sub) seenSubjects.push({ subject: m.subject, data: m.data });
  })();
}, 300_000);

afterAll(async () => {
  await tools?.close();
  await mesh?.close();
});

function auth(token: string) {
  return { authorization: `Bearer ${token}` };
}

function watchClient(kind: "connect" | "grpc" = "connect") {
  const transport =
    kind === "grpc"
      ? createGrpcTransport({ baseUrl: mesh.url("api") })
      : createConnectTransport({ baseUrl: mesh.url("api"), httpVersion: "1.1" });
  return createClient(ServerWatchService, transport);
}

function conductorAs(token: string) {
  const client = createClient(
    ConductorService,
    createConnectTransport({ baseUrl: mesh.url("conductor"), httpVersion: "2" }),
  );
  return (name: string) =>
    client.createServers(
      { name, flavorId: "1", imageRef: "cirros", networkMode: NetworkMode.NONE },
      { headers: auth(token) },
    );
}

/** A running watch: what it received, until it is stopped. */
interface Watch {
  responses: WatchServersResponse[];
  /** Resolves with the first response (the watch is in place). */
  ready: Promise<WatchServersResponse>;
  ended: Promise<unknown>;
  stop(): void;
}

function watch(
  token: string | undefined,
  request: { after?: bigint; allProjects?: boolean; serverId?: string } = {},
  kind: "connect" | "grpc" = "connect",
): Watch {
  const abort = new AbortController();
  const responses: WatchServersResponse[] = [];
  let readyResolve!: (r: WatchServersResponse) => void;
  let readyReject!: (err: unknown) => void;
  const ready = new Promise<WatchServersResponse>((resolve, reject) => {
    readyResolve = resolve;
    readyReject = reject;
  });
  const ended = (async () => {
    try {
      for await (const r of watchClient(kind).watchServers(request, {
        signal: abort.signal,
        headers: token ? auth(token) : {},
      })) {
        if (responses.length === 0) readyResolve(r);
        responses.push(r);
      }
    } catch (err) {
      readyReject(err);
      if (!abort.signal.aborted) return err;
    }
    return undefined;
  })();
  return { responses, ready, ended, stop: () => abort.abort() };
}

const steps = (rs: WatchServersResponse[], serverId: string) =>
  rs.filter((r) => r.change?.serverId === serverId).map((r) => `${r.change!.vmState}/${r.change!.taskState}`);

const settled = (rs: WatchServersResponse[], ids: string[]) =>
  ids.every((id) =>
    rs.some((r) => r.change?.serverId === id && ["ACTIVE", "ERROR"].includes(r.change.status)),
  );

describe("ServerWatchService", () => {
  it("delivers every state change of 100 concurrent builds, in order per server, to a watcher", async () => {
    const user = await mesh.token({ user: "watcher", project: "watch-many", roles: ["member"] });
    const w = watch(user.token);
    const ready = await w.ready;
    expect(ready.change).toBeUndefined();
    const create = conductorAs(user.token);
    const ids = (await Promise.all(Array.from({ length: 100 }, (_, i) => create(`many-${i}`)))).map(
      (r) => r.servers[0]!.id,
    );
    await until("every build settled in the stream", async () => settled(w.responses, ids), 120_000, 100);
    w.stop();
    for (const id of ids) expect(steps(w.responses, id), id).toEqual(BUILD_STEPS);
    // Cursors only go forward; the change carries the fault-free ACTIVE status and its host.
    const cursors = w.responses.map((r) => r.cursor);
    expect(cursors).toEqual([...cursors].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0)));
    expect(new Set(cursors).size).toBe(cursors.length);
    const active = w.responses.filter((r) => r.change?.status === "ACTIVE");
    expect(
      active.every((r) => r.change!.host.startsWith("watch-") && r.change!.projectId === user.projectId),
    ).toBe(true);
  }, 300_000);

  it("resumes after a reconnect mid-build from the last cursor: nothing missed, nothing twice", async () => {
    const user = await mesh.token({ user: "watcher", project: "watch-resume", roles: ["member"] });
    const first = watch(user.token, {}, "grpc");
    await first.ready;
    const create = conductorAs(user.token);
    const ids = (await Promise.all(Array.from({ length: 20 }, (_, i) => create(`resume-${i}`)))).map(
      (r) => r.servers[0]!.id,
    );
    // Drop out once some changes arrived and before the builds are done.
    await until("some changes", async () => first.responses.length > 10, 30_000, 5);
    first.stop();
    await first.ended;
    const before = [...first.responses];
    expect(settled(before, ids)).toBe(false);
    const last = before.at(-1)!.cursor;
    const second = watch(user.token, { after: last });
    expect((await second.ready).cursor).toBe(last);
    await until(
      "every build settled after the reconnect",
      async () => settled(second.responses, ids),
      60_000,
    );
    second.stop();
    const all = [...before, ...second.responses.slice(1)];
    for (const id of ids) expect(steps(all, id), id).toEqual(BUILD_STEPS);
    const cursors = all.filter((r) => r.change).map((r) => r.cursor);
    expect(new Set(cursors).size).toBe(cursors.length);
  }, 120_000);

  it("refuses a watch without a token, and another project's or all projects' servers to a member", async () => {
    const refused = watch(undefined);
    await expect(refused.ready).rejects.toSatisfy(
      (err) => ConnectError.from(err).code === Code.Unauthenticated,
    );
    const bad = watch("not-a-token");
    await expect(bad.ready).rejects.toSatisfy((err) => ConnectError.from(err).code === Code.Unauthenticated);

    const alice = await mesh.token({ user: "alice-w", project: "watch-alice", roles: ["member"] });
    const bob = await mesh.token({ user: "bob-w", project: "watch-bob", roles: ["member"] });
    const admin = await mesh.token({ user: "admin-w", project: "watch-admin", roles: ["admin"] });
    const all = watch(bob.token, { allProjects: true });
    await expect(all.ready).rejects.toSatisfy((err) => ConnectError.from(err).code === Code.PermissionDenied);

    const bobs = watch(bob.token);
    // A member naming alice's server still sees only its own project's.
    const bobsNamed = watch(bob.token);
    const admins = watch(admin.token, { allProjects: true });
    await Promise.all([bobs.ready, admins.ready, bobsNamed.ready]);
    const create = conductorAs(alice.token);
    const ids = (await Promise.all([create("a-1"), create("a-2"), create("a-3")])).map(
      (r) => r.servers[0]!.id,
    );
    await until("alice's builds seen by the admin", async () => settled(admins.responses, ids), 60_000);
    for (const id of ids) expect(steps(admins.responses, id)).toEqual(BUILD_STEPS);
    const named = watch(bob.token, { serverId: ids[0]! });
    await named.ready;
    // The admin saw them settle: bob's watches (the same stream) have had every chance to see them.
    await new Promise((r) => setTimeout(r, 300));
    for (const w of [bobs, bobsNamed, named, admins]) w.stop();
    expect(bobs.responses.filter((r) => r.change)).toEqual([]);
    expect(named.responses.filter((r) => r.change)).toEqual([]);
  }, 120_000);

  it("follows a delete: deleting, then deleted", async () => {
    const user = await mesh.token({ user: "watcher", project: "watch-delete", roles: ["member"] });
    const w = watch(user.token);
    await w.ready;
    const id = (await conductorAs(user.token)("to-delete")).servers[0]!.id;
    await until("ACTIVE", async () => settled(w.responses, [id]), 60_000);
    const client = createClient(
      ConductorService,
      createConnectTransport({ baseUrl: mesh.url("conductor"), httpVersion: "2" }),
    );
    await client.deleteServer({ id }, { headers: auth(user.token) });
    await until("DELETED", async () => w.responses.some((r) => r.change?.status === "DELETED"), 60_000);
    w.stop();
    expect(steps(w.responses, id)).toEqual([...BUILD_STEPS, "active/deleting", "deleted/"]);
  }, 120_000);

  it("refuses a cursor beyond the stream's end", async () => {
    const user = await mesh.token({ user: "watcher", project: "watch-many", roles: ["reader"] });
    const w = watch(user.token, { after: 1n << 60n });
    await expect(w.ready).rejects.toSatisfy((err) => ConnectError.from(err).code === Code.InvalidArgument);
  });
});

describe("GET /v2.1/stratus/server-events (Server-Sent Events)", () => {
  /** Reads an SSE response until `done` says so; the events as {id, event, data}. */
  async function readEvents(res: Response, done: (events: SseEvent[]) => boolean, abort: AbortController) {
    const events: SseEvent[] = [];
    const decoder = new TextDecoder();
    let buffer = "";
    const reader = res.body!.getReader();
    try {
      while (!done(events)) {
        const { value, done: end } = await reader.read();
        if (end) break;
        buffer += decoder.decode(value, { stream: true });
        for (let i = buffer.indexOf("\n\n"); i >= 0; i = buffer.indexOf("\n\n")) {
          const block = buffer.slice(0, i);
          buffer = buffer.slice(i + 2);
          const e: Record<string, string> = {};
          for (const line of block.split("\n")) {
            if (line.startsWith(":")) continue;
            const at = line.indexOf(": ");
            e[line.slice(0, at)] = line.slice(at + 2);
          }
          if (e.event) events.push({ id: e.id!, event: e.event, data: JSON.parse(e.data!) });
        }
      }
    } finally {
      abort.abort();
    }
    return events;
  }
  interface SseEvent {
    id: string;
    event: string;
    data: any;
  }

  const open = (token: string | undefined, query = "", headers: Record<string, string> = {}) => {
    const abort = new AbortController();
    const res = fetch(`${mesh.apiUrl}/v2.1/stratus/server-events${query}`, {
      headers: { ...(token ? { "x-auth-token": token } : {}), ...headers },
      signal: abort.signal,
    });
    return { res, abort };
  };

  it("streams a build to ACTIVE, and resumes from Last-Event-ID", async () => {
    const carol = await mesh.token({
      user: "carol",
      project: `sse-${randomUUID().slice(0, 8)}`,
      roles: ["member"],
    });
    const { res, abort } = open(carol.token);
    const r = await res;
    expect(r.status).toBe(200);
    expect(r.headers.get("content-type")).toMatch(/^text\/event-stream/);
    const eventsPromise = readEvents(
      r,
      (es) => es.some((e) => e.event === "server" && e.data.status === "ACTIVE"),
      abort,
    );
    const created = await conductorAs(carol.token)("sse");
    const serverId = created.servers[0]!.id;
    const events = await eventsPromise;
    expect(events[0]!.event).toBe("ready");
    const mine = events.filter((e) => e.event === "server");
    expect(mine.map((e) => `${e.data.vm_state}/${e.data.task_state ?? ""}`)).toEqual(BUILD_STEPS);
    expect(mine.every((e) => e.data.server_id === serverId && e.data.project_id === carol.projectId)).toBe(
      true,
    );

    // From the first change on: the two after it, again.
    const again = open(carol.token, `?server_id=${serverId}`, { "last-event-id": mine[0]!.id });
    const replay = await readEvents(
      await again.res,
      (es) => es.filter((e) => e.event === "server").length >= 2,
      again.abort,
    );
    expect(replay[0]).toMatchObject({ event: "ready", id: mine[0]!.id });
    expect(replay.filter((e) => e.event === "server").map((e) => e.id)).toEqual([mine[1]!.id, mine[2]!.id]);
  }, 60_000);

  it("answers 401 without a token and 403 for all projects to a member, as Nova faults", async () => {
    const none = await await open(undefined).res;
    expect(none.status).toBe(401);
    const carol = await mesh.token({ user: "carol", project: "p-sse", roles: ["member"] });
    const all = open(carol.token, "?all_projects=1");
    const r = await all.res;
    expect(r.status).toBe(403);
    expect(((await r.json()) as { forbidden: { code: number } }).forbidden.code).toBe(403);
    const bad = await open(carol.token, "", { "last-event-id": "x1" }).res;
    expect(bad.status).toBe(400);
  });
});

describe("tools a user has", () => {
  it("buf curl finds grpc.health.v1.Health by reflection and checks it", async () => {
    const { stdout } = await run(join(repoRoot, "node_modules/.bin/buf"), [
      "curl",
      "--protocol",
      "grpc",
      "--http2-prior-knowledge",
      `${mesh.url("api")}/grpc.health.v1.Health/Check`,
    ]);
    expect(JSON.parse(stdout)).toEqual({ status: "SERVING" });
  });

  it("scripts/watch.mjs --watch follows a server to ACTIVE", async () => {
    const dave = await mesh.token({
      user: "dave",
      project: `script-${randomUUID().slice(0, 8)}`,
      roles: ["member"],
    });
    const id = (await conductorAs(dave.token)("scripted")).servers[0]!.id;
    const { stdout } = await run(
      process.execPath,
      [join(repoRoot, "scripts/watch.mjs"), "--watch", id, "--url", mesh.apiUrl],
      { env: { ...process.env, OS_TOKEN: dave.token }, timeout: 60_000 },
    );
    // Whether it saw the build or found it already done, it ends on ACTIVE.
    expect(stdout.trim().split("\n").at(-1)).toMatch(new RegExp(`${id} ACTIVE`));
  }, 90_000);
});

describe("what the mesh published meanwhile", () => {
  it("was all on subjects events.proto declares for the message carried", () => {
    const events = seenSubjects.filter((s) => s.subject.startsWith("stratus."));
    expect(events.length).toBeGreaterThan(300);
    const undeclared = new Set<string>();
    for (const { subject, data } of events) {
      const d = declarationOf(subject);
      if (!d) undeclared.add(subject);
      else expect(() => fromBinary(d.message, data)).not.toThrow();
    }
    expect([...undeclared]).toEqual([]);
    const names = new Set(events.map((e) => declarationOf(e.subject)?.name));
    for (const name of ["serverState", "computeBuild", "computeResult", "serversChanged"])
      expect(names.has(name)).toBe(true);
  });
});
