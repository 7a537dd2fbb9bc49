// An answer that matches what happened: the conductor killed (SIGKILL) in the middle of a burst of
// creates through the REST API and started again. Every client that got 202 has its server, every
// client that got 503 has none, and no request made two. The 503s say which kind of service is
// unavailable (no address, no transport error) and when to try again. An Idempotency-Key names a
// create: the same key gives the same server back.
import { ConductorService } from "@stratus/contracts/compute/v1";
import { serviceClient } from "@stratus/runtime";
import { type Mesh, startMesh } from "@stratus/runtime/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { asAdmin, projectId, rest, until, useMesh } from "./helpers.js";

const IMAGE = "a9e6c1b4-5f0d-4c36-8a57-2f4f6b1c0c01";
const PROJECT = "p-burst";
const TOKEN = `burst:${PROJECT}`;
const BURST = 120;
const IN_FLIGHT = 12;

let mesh: Mesh;
beforeAll(async () => {
  const many = "100000";
  mesh = await startMesh({
    serviceEnv: {
      conductor: { QUOTA_INSTANCES: many, QUOTA_CORES: many, QUOTA_RAM_MB: "100000000" },
      "compute-agent": { COMPUTE_HOSTS: "burst-[1-4]", COMPUTE_VCPUS: "1000", COMPUTE_MEMORY_MB: "10000000" },
    },
  });
  useMesh(mesh);
});
afterAll(async () => {
  await mesh?.close();
});

const create = (name: string, headers: Record<string, string> = {}) =>
  rest(mesh.apiUrl, "POST", "/v2.1/servers", {
    token: TOKEN,
    version: "2.37",
    headers,
    body: { server: { name, imageRef: IMAGE, flavorRef: "1", networks: "none" } },
  });

async function serversOfProject() {
  const conductor = serviceClient(ConductorService, mesh.url("conductor"));
  const project = await projectId(PROJECT);
  return asAdmin(async () => {
    const { servers } = await conductor.listServers({
      projectId: project,
      allProjects: true,
      includeDeleted: true,
      limit: 10_000,
    });
    return servers;
  });
}

describe("creates while the conductor is killed", () => {
  it("every 202 has its server, every 503 has none, none made twice", async () => {
    const answers = new Map<
      string,
      { status: number; id?: string; body: unknown; retryAfter: string | null }
    >();
    let next = 0;
    let accepted = 0;
    const client = async () => {
      while (next < BURST) {
        const name = `burst-${next++}`;
        const r = await create(name);
        if (r.status === 202) accepted++;
        answers.set(name, {
          status: r.status,
          id: r.body?.server?.id,
          body: r.body,
          retryAfter: r.headers.get("retry-after"),
        });
      }
    };
    const burst = Promise.all(Array.from({ length: IN_FLIGHT }, client));
    // Killed with creates in flight, once a fifth of the burst was accepted; started again at once.
    await until("a fifth accepted", async () => accepted >= BURST / 5, 60_000);
    await mesh.stop("conductor", "SIGKILL");
    // Creates that arrive while it is down: refused before anything was sent, so 503 at once.
    const whileDown = Promise.all(Array.from({ length: 4 }, (_, i) => create(`down-${i}`)));
    const restarted = mesh.restart("conductor");
    const down = await whileDown;
    await restarted;
    await burst;
    expect(down.map((r) => r.status)).toEqual([503, 503, 503, 503]);
    for (const [i, r] of down.entries()) {
      answers.set(`down-${i}`, { status: r.status, body: r.body, retryAfter: r.headers.get("retry-after") });
    }

    const statuses = [...answers.values()].map((a) => a.status);
    expect(statuses.filter((s) => s !== 202 && s !== 503)).toEqual([]);
    const servers = await serversOfProject();
    const byName = new Map<string, string[]>();
    for (const s of servers) byName.set(s.name, [...(byName.get(s.name) ?? []), s.id]);
    const mismatches: string[] = [];
    for (const [name, a] of answers) {
      const saved = byName.get(name) ?? [];
      if (a.status === 202 && (saved.length !== 1 || saved[0] !== a.id)) {
        mismatches.push(`${name}: 202 ${a.id}, saved ${saved.join(",") || "none"}`);
      }
      if (a.status === 503 && saved.length !== 0) mismatches.push(`${name}: 503, saved ${saved.join(",")}`);
    }
    expect(mismatches).toEqual([]);
    expect(servers.length).toBe(statuses.filter((s) => s === 202).length);
    for (const a of answers.values()) {
      if (a.status !== 503) continue;
      expect(a.body).toEqual({
        serviceUnavailable: { code: 503, message: "The compute service is unavailable, try again later." },
      });
      expect(a.retryAfter).toBe("5");
    }
  }, 300_000);
});

describe("an Idempotency-Key", () => {
  it("names a create: the same key gives the same server, another key another", async () => {
    const first = await create("keyed", { "idempotency-key": "order-1" });
    const again = await create("keyed", { "idempotency-key": "order-1" });
    const quoted = await create("keyed", { "idempotency-key": '"order-1"' });
    const other = await create("keyed", { "idempotency-key": "order-2" });
    expect([first.status, again.status, quoted.status, other.status]).toEqual([202, 202, 202, 202]);
    expect(again.body.server.id).toBe(first.body.server.id);
    expect(quoted.body.server.id).toBe(first.body.server.id);
    expect(other.body.server.id).not.toBe(first.body.server.id);
    // Another user's same key is another create.
    const stranger = await rest(mesh.apiUrl, "POST", "/v2.1/servers", {
      token: `stranger:${PROJECT}`,
      version: "2.37",
      headers: { "idempotency-key": "order-1" },
      body: { server: { name: "keyed", imageRef: IMAGE, flavorRef: "1", networks: "none" } },
    });
    expect(stranger.status).toBe(202);
    expect(stranger.body.server.id).not.toBe(first.body.server.id);
    const keyed = (await serversOfProject()).filter((s) => s.name === "keyed");
    expect(keyed.map((s) => s.id).sort()).toEqual(
      [first.body.server.id, other.body.server.id, stranger.body.server.id].sort(),
    );
  });

  it("that is not 1-255 visible ASCII characters is refused, creating nothing", async () => {
    const before = (await serversOfProject()).length;
    for (const key of ["", "a b", "x".repeat(256), "é"]) {
      const r = await create("bad-key", { "idempotency-key": key });
      expect(r.status, JSON.stringify(key)).toBe(400);
    }
    expect((await serversOfProject()).length).toBe(before);
  });
});
