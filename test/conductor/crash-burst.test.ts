// Crash during a burst, with the audit as the oracle (issue 23): 48 creates through the REST API,
// each with an Idempotency-Key, on a routed network with small segments (a /27 each), the
// conductor SIGKILLed once a fifth were accepted and started again; a client that gets 503 tries
// again with the same key. Every key ends with one server (202, the same server on every 202 of
// that key), and once the builds are over the audit finds nothing: no orphan port or allocation, no
// duplicate address, each segment's IPv4 usage equal to the addresses held in it, no server stuck.
import { ConductorService } from "@stratus/contracts/compute/v1";
import { NetworkService } from "@stratus/contracts/network/v1";
import { serviceClient } from "@stratus/runtime";
import { type Mesh, startMesh } from "@stratus/runtime/testing";
import { afterAll, expect, it } from "vitest";
import { asAdmin, caller, rest, useMesh } from "../api/helpers.js";
import { activatedAfter, until, waitAll } from "./helpers.js";

const IMAGE = "a9e6c1b4-5f0d-4c36-8a57-2f4f6b1c0c01";
/** The caller: user crash, a member of project p-crash (a real token of the mesh's identity). */
const TOKEN = "crash:p-crash";
let PROJECT = "";
const BURST = 48;
const IN_FLIGHT = 8;

let mesh: Mesh;
afterAll(async () => {
  await mesh?.close();
});

it("conductor killed in a burst of 48 keyed creates on small segments: one server per key, the audit finds nothing", async () => {
  const many = "100000";
  mesh = await startMesh({
    serviceEnv: {
      conductor: {
        QUOTA_INSTANCES: many,
        QUOTA_CORES: many,
        QUOTA_RAM_MB: "100000000",
        BUILD_SWEEP_MS: "500",
        // A dead replica's leases run out soon, so that the restarted one resumes its builds quickly.
        BUILD_LEASE_MS: "3000",
        AUDIT_GRACE_S: "0",
      },
      "compute-agent": {
        COMPUTE_HOSTS: "rack1-[1-3],rack2-[1-3]",
        COMPUTE_PHYSNETS: "rack1-*=physnet-rack1,rack2-*=physnet-rack2",
        SPAWN_DELAY_MS: "200",
      },
    },
  });
  useMesh(mesh);
  PROJECT = (await caller(TOKEN)).projectId;
  const net = serviceClient(NetworkService, mesh.url("network-adapter"));
  const conductor = serviceClient(ConductorService, mesh.url("conductor"));
  const { network } = await net.createNetwork({
    name: "routed",
    projectId: "admin",
    shared: true,
    segments: [
      { name: "rack1", networkType: "vlan", physicalNetwork: "physnet-rack1", segmentationId: 401 },
      { name: "rack2", networkType: "vlan", physicalNetwork: "physnet-rack2", segmentationId: 402 },
    ],
  });
  for (const [i, seg] of network!.segments.entries()) {
    await net.createSubnet({ networkId: network!.id, segmentId: seg.id, cidr: `10.4${i}.0.0/27` });
  }
  await until("hosts in segments", async () => (await net.listHostSegments({})).mappings.length >= 6, 90_000);

  const create = (key: string) =>
    rest(mesh.apiUrl, "POST", "/v2.1/servers", {
      token: TOKEN,
      version: "2.37",
      headers: { "idempotency-key": key },
      body: { server: { name: key, imageRef: IMAGE, flavorRef: "1", networks: [{ uuid: network!.id }] } },
    });
  /** Each key's answers, in order. */
  const answers = new Map<string, { status: number; id?: string }[]>();
  let next = 0;
  let accepted = 0;
  const client = async () => {
    while (next < BURST) {
      const key = `crash-${next++}`;
      for (let attempt = 0; ; attempt++) {
        const r = await create(key);
        answers.set(key, [...(answers.get(key) ?? []), { status: r.status, id: r.body?.server?.id }]);
        if (r.status === 202) {
          accepted++;
          break;
        }
        // 503 while the conductor is down: the client tries again with the same key.
        expect(r.status, `${key}: ${JSON.stringify(r.body)}`).toBe(503);
        expect(attempt).toBeLessThan(200);
        await new Promise((res) => setTimeout(res, 100));
      }
    }
  };
  const burst = Promise.all(Array.from({ length: IN_FLIGHT }, client));
  await until("a fifth accepted", async () => accepted >= BURST / 5, 60_000, 10);
  await mesh.stop("conductor", "SIGKILL");
  const killedAt = new Date();
  await mesh.restart("conductor");
  await burst;

  // One server per key, the one every 202 of that key named; some keys saw a 503 first.
  const { servers } = await asAdmin(() =>
    conductor.listServers({ projectId: PROJECT, allProjects: true, limit: 10_000 }),
  );
  const byName = new Map<string, string[]>();
  for (const s of servers) byName.set(s.name, [...(byName.get(s.name) ?? []), s.id]);
  for (const [key, list] of answers) {
    const ids = new Set(list.filter((a) => a.status === 202).map((a) => a.id));
    expect([...ids], key).toEqual(byName.get(key));
  }
  expect(servers).toHaveLength(BURST);

  const settled = await waitAll(
    conductor,
    servers.map((s) => s.id),
    240_000,
  );
  expect(settled.filter((s) => !["ACTIVE", "ERROR"].includes(s.status))).toEqual([]);
  // The kill landed mid-burst: builds in BUILD then were finished by the restarted conductor.
  expect(activatedAfter(settled, killedAt).length).toBeGreaterThan(0);
  // The oracle: the three owners agree.
  const { findings } = await conductor.auditMesh({});
  expect(findings.map((f) => `${f.kind} ${f.subject}: ${f.detail}`)).toEqual([]);
  // An ERROR server holds nothing, an ACTIVE one its address (the audit does not look at ERROR).
  for (const s of settled) {
    const ports = (await net.listPorts({ deviceId: s.id })).ports;
    expect(ports.length, `${s.id} ${s.status}`).toBe(s.status === "ACTIVE" ? 1 : 0);
  }
}, 600_000);
