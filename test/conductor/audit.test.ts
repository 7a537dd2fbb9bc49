// The mesh audit (docs/audit.md) over a real mesh on PostgreSQL: after builds and deletes, and while
// builds are in flight, it finds nothing; with an orphan port (of a deleted server, and of a server
// that never existed), an orphan allocation and a duplicate address planted through the databases
// it finds exactly those — through the AuditMesh RPC, `npm run audit`, the admin REST endpoint and
// the reconciler's events — and `--fix` removes the orphans, after which only the duplicate is left;
// a routed server's lost address claim is a segment usage mismatch that `--fix` heals.
import { execFile } from "node:child_process";
import { randomUUID } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fromBinary } from "@bufbuild/protobuf";
import { NetworkMode } from "@stratus/contracts/compute/v1";
import { AuditFindingSchema } from "@stratus/contracts/events/v1";
import { NetworkService } from "@stratus/contracts/network/v1";
import { Subjects, serviceClient } from "@stratus/runtime";
import {
  createTempDatabase,
  type Mesh,
  postgresAvailable,
  startMesh,
  type TempDatabase,
} from "@stratus/runtime/testing";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { collectEvents } from "../network/helpers.js";
import { as, clients, until, waitAll } from "./helpers.js";

const havePostgres = await postgresAvailable();
const ROOT = new URL("../..", import.meta.url).pathname;

let mesh: Mesh;
const dbs: Record<string, TempDatabase> = {};
let tmp: string;

afterAll(async () => {
  await mesh?.close();
  await Promise.all(Object.values(dbs).map((d) => d.drop()));
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

/** Runs one statement list on a service's database. */
async function sql(service: string, statements: [string, unknown[]?][]): Promise<pg.QueryResult[]> {
  const c = new pg.Client({ connectionString: dbs[service]!.url });
  await c.connect();
  try {
    const out: pg.QueryResult[] = [];
    for (const [text, params] of statements) out.push(await c.query(text, params));
    return out;
  } finally {
    await c.end();
  }
}

/** `npm run audit` as an operator runs it: exit status and output. */
function runAudit(...args: string[]): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ["--import", "tsx", join(ROOT, "scripts/audit.ts"), ...args],
      {
        cwd: ROOT,
        env: {
          ...process.env,
          IDENTITY_URL: mesh.identity.restUrl,
          ADMIN_PASSWORD_FILE: join(tmp, "admin.password"),
          CONDUCTOR_URL: mesh.url("conductor"),
        },
      },
      (err, stdout, stderr) =>
        resolve({ code: err ? Number((err as { code?: number }).code ?? 2) : 0, out: `${stdout}${stderr}` }),
    );
  });
}

describe.skipIf(!havePostgres)("the mesh audit", () => {
  let conductor: ReturnType<typeof clients>["conductor"];
  let net: ReturnType<typeof serviceClient<typeof NetworkService>>;
  let routedId: string;
  let plainId: string;
  const findings = async (fix = false) =>
    (await conductor.auditMesh({ fix })).findings.map((f) => `${f.kind} ${f.subject}`).sort();
  const boot = async (name: string, count: number, networkId: string | undefined) => {
    const res = await as("audit", () =>
      conductor.createServers({
        name,
        flavorId: "1",
        minCount: count,
        maxCount: count,
        networkMode: networkId ? NetworkMode.LIST : NetworkMode.NONE,
        networks: networkId ? [{ networkId }] : [],
      }),
    );
    return res.servers.map((s) => s.id);
  };

  beforeAll(async () => {
    for (const s of ["scheduler", "network-adapter", "conductor"])
      dbs[s] = await createTempDatabase("stratus_audit");
    mesh = await startMesh({
      services: ["scheduler", "network-adapter", "conductor", "compute-agent", "api"],
      serviceEnv: {
        scheduler: { DATABASE_URL: dbs.scheduler!.url },
        "network-adapter": { DATABASE_URL: dbs["network-adapter"]!.url },
        conductor: {
          DATABASE_URL: dbs.conductor!.url,
          // No grace: what the audit leaves alone it leaves for being in flight, not for being young.
          AUDIT_GRACE_S: "0",
          AUDIT_INTERVAL_S: "1",
          QUOTA_INSTANCES: "100",
          QUOTA_CORES: "100",
        },
        "compute-agent": {
          COMPUTE_HOSTS: "rack1-[1-2],rack2-[1-2]",
          COMPUTE_PHYSNETS: "rack1-*=physnet-rack1,rack2-*=physnet-rack2",
          SPAWN_DELAY_MS: "400",
        },
      },
    });
    tmp = mkdtempSync(join(tmpdir(), "stratus-audit-"));
    writeFileSync(join(tmp, "admin.password"), mesh.identity.adminPassword);
    ({ conductor } = clients(mesh.url("conductor"), mesh.url("scheduler")));
    net = serviceClient(NetworkService, mesh.url("network-adapter"));
    const routed = await net.createNetwork({
      name: "routed",
      projectId: "audit",
      shared: true,
      segments: [
        { name: "rack1", networkType: "vlan", physicalNetwork: "physnet-rack1", segmentationId: 301 },
        { name: "rack2", networkType: "vlan", physicalNetwork: "physnet-rack2", segmentationId: 302 },
      ],
    });
    routedId = routed.network!.id;
    for (const [i, seg] of routed.network!.segments.entries()) {
      await net.createSubnet({ networkId: routedId, segmentId: seg.id, cidr: `10.3${i}.0.0/26` });
    }
    plainId = (await net.createNetwork({ name: "plain", projectId: "audit" })).network!.id;
    await net.createSubnet({ networkId: plainId, cidr: "10.60.0.0/24" });
    await until(
      "hosts in segments",
      async () => (await net.listHostSegments({})).mappings.length >= 4,
      90_000,
    );
  }, 180_000);

  let deleted: { id: string; portId: string };
  let routedServer: string;
  let plainServers: string[];

  it("finds nothing after builds and deletes, nor while builds are in flight", async () => {
    const routed = await boot("r", 6, routedId);
    plainServers = await boot("p", 3, plainId);
    const lonely = await boot("n", 1, undefined);
    const built = await waitAll(conductor, [...routed, ...plainServers, ...lonely], 180_000);
    expect(built.map((s) => s.status)).toEqual(built.map(() => "ACTIVE"));
    // Deleted: one routed server and one on the plain network.
    const gone = built.find((s) => s.id === routed[0])!;
    deleted = { id: gone.id, portId: gone.addresses[0]!.portId };
    routedServer = routed[1]!;
    for (const id of [routed[0]!, plainServers[0]!]) await as("audit", () => conductor.deleteServer({ id }));
    plainServers = plainServers.slice(1);
    await waitAll(conductor, [routed[0]!, plainServers[0]!], 60_000);
    await until("deletes done", async () => {
      const { servers } = await as("audit", () => conductor.listServers({}));
      return servers.length === 8 && servers.every((s) => s.taskState === "");
    });
    expect(await findings()).toEqual([]);

    // Builds in flight hold ports and claims their servers do not show yet: never a finding.
    const more = await boot("f", 8, routedId);
    for (let i = 0; i < 5; i++) expect(await findings()).toEqual([]);
    await waitAll(conductor, more, 180_000);
    expect(await findings()).toEqual([]);
    const ok = await runAudit();
    expect(ok.out).toContain("0 finding(s)");
    expect(ok.code).toBe(0);
  }, 400_000);

  it("finds exactly what was planted through the databases; --fix removes the orphans", async () => {
    const events = await collectEvents(await mesh.nats.connect("tools"), Subjects.auditFinding);
    const strangerPort = randomUUID();
    const stranger = randomUUID();
    const consumer = randomUUID();
    // An orphan port its build created (the server was deleted), and one naming no server at all.
    await sql("network-adapter", [
      [
        `INSERT INTO ports (id, network_id, project_id, mac_address, device_id, device_owner, ip_allocation, binding_host_id)
         VALUES ($1, $2, 'audit', 'fa:16:3e:00:aa:01', $3, 'compute:nova', 'none', 'rack1-1'),
                ($4, $2, 'audit', 'fa:16:3e:00:aa:02', $5, 'compute:nova', 'none', 'rack2-1')`,
        [deleted.portId, plainId, deleted.id, strangerPort, stranger],
      ],
    ]);
    // An orphan allocation: a consumer no server is, holding a VCPU of rack1-1.
    await sql("scheduler", [
      [
        "INSERT INTO consumers (uuid, project_id, user_id, generation) VALUES ($1, 'audit', 'alice', 1)",
        [consumer],
      ],
      [
        `INSERT INTO allocations (consumer_uuid, provider_id, resource_class, used)
         SELECT $1, id, 'VCPU', 1 FROM resource_providers WHERE name = 'rack1-1'`,
        [consumer],
      ],
      [
        `UPDATE inventories SET used = used + 1
         WHERE resource_class = 'VCPU' AND provider_id = (SELECT id FROM resource_providers WHERE name = 'rack1-1')`,
      ],
    ]);
    // A duplicate address: a second server's port given the first's address, in an overlapping subnet.
    const [a, b] = await Promise.all(
      plainServers.map((id) => conductor.getServer({ id }).then((r) => r.server!)),
    );
    const ip = a!.addresses[0]!.ipAddress;
    const dupSubnet = randomUUID();
    await sql("network-adapter", [
      [
        `INSERT INTO subnets (id, network_id, project_id, cidr, net_first, net_last, prefixlen)
         SELECT $1, network_id, project_id, cidr, net_first, net_last, prefixlen FROM subnets WHERE network_id = $2`,
        [dupSubnet, plainId],
      ],
      [
        "INSERT INTO ip_allocations (subnet_id, ip, port_id) VALUES ($1, $2::inet - '0.0.0.0'::inet, $3)",
        [dupSubnet, ip, b!.addresses[0]!.portId],
      ],
    ]);
    const planted = [
      `duplicate_address ${plainId}/${ip}`,
      `orphan_allocation ${consumer}`,
      `orphan_port ${deleted.portId}`,
      `orphan_port ${strangerPort}`,
    ].sort();

    // The RPC, the REST endpoint (admin only), the script and the reconciler agree.
    expect(await findings()).toEqual(planted);
    // Real tokens of the mesh's identity: an admin, and a member of a project.
    const admin = (await mesh.token({ user: "audit-admin", project: "admin", roles: ["admin"] })).token;
    const alice = (await mesh.token({ user: "alice", project: "audit", roles: ["member"] })).token;
    const rest = await fetch(`${mesh.apiUrl}/v2.1/os-stratus-audit`, {
      headers: { "x-auth-token": admin },
    });
    expect(rest.status).toBe(200);
    const body = (await rest.json()) as {
      audit: { findings: { kind: string; subject: string; fix: string }[] };
    };
    expect(body.audit.findings.map((f) => `${f.kind} ${f.subject}`).sort()).toEqual(planted);
    expect(body.audit.findings.every((f) => f.fix.length > 0)).toBe(true);
    const member = await fetch(`${mesh.apiUrl}/v2.1/os-stratus-audit`, {
      headers: { "x-auth-token": alice },
    });
    expect(member.status).toBe(403);
    const refused = await fetch(`${mesh.apiUrl}/v2.1/os-stratus-audit`, {
      method: "POST",
      headers: { "x-auth-token": admin, "content-type": "application/json" },
      body: JSON.stringify({ audit: { fix: "yes" } }),
    });
    expect(refused.status).toBe(400);
    expect(await findings()).toEqual(planted);
    const report = await runAudit();
    expect(report.code).toBe(1);
    expect(report.out).toContain("4 finding(s)");
    for (const p of planted) expect(report.out).toContain(p);
    await until("the reconciler's events", async () => {
      const seen = new Set(
        events.events.map((e) => {
          const f = fromBinary(AuditFindingSchema, e.data);
          return `${f.kind} ${f.subject}`;
        }),
      );
      return planted.every((p) => seen.has(p));
    });
    await events.close();

    // --fix: the orphans go (the build's port deleted, the stranger's released, the consumer's
    // allocations deleted); the duplicate is left for an operator and keeps the status 1.
    const fixed = await runAudit("--fix");
    expect(fixed.out).toContain(`repaired: delete_port ${deleted.portId}`);
    expect(fixed.out).toContain(`repaired: release_port ${strangerPort}`);
    expect(fixed.out).toContain(`repaired: delete_allocations ${consumer}`);
    expect(fixed.code).toBe(1);
    expect(await findings()).toEqual([`duplicate_address ${plainId}/${ip}`]);
    expect((await net.listPorts({ ids: [deleted.portId] })).ports).toEqual([]);
    const [released] = (await net.listPorts({ ids: [strangerPort] })).ports;
    expect([released?.deviceId, released?.bindingHostId]).toEqual(["", ""]);
    const [vcpu] = (
      await sql("scheduler", [
        [
          `SELECT i.used, (SELECT coalesce(sum(a.used), 0) FROM allocations a WHERE a.provider_id = i.provider_id
             AND a.resource_class = 'VCPU') AS held FROM inventories i JOIN resource_providers p ON p.id = i.provider_id
           WHERE p.name = 'rack1-1' AND i.resource_class = 'VCPU'`,
        ],
      ])
    )[0]!.rows;
    expect(Number(vcpu.used)).toBe(Number(vcpu.held));

    // The duplicate taken away by hand: the audit is clean again.
    await sql("network-adapter", [
      ["DELETE FROM ip_allocations WHERE subnet_id = $1", [dupSubnet]],
      ["DELETE FROM subnets WHERE id = $1", [dupSubnet]],
    ]);
    const clean = await runAudit();
    expect(clean.out).toContain("0 finding(s)");
    expect(clean.code).toBe(0);

    // A routed server's address claim lost in placement: its segment's usage is one short, and
    // --fix heals that server's allocations from what its port holds.
    const [lost] = (
      await sql("scheduler", [
        [
          `WITH d AS (DELETE FROM allocations WHERE consumer_uuid = $1 AND resource_class = 'IPV4_ADDRESS'
             RETURNING provider_id, used)
           UPDATE inventories i SET used = i.used - d.used FROM d
           WHERE i.provider_id = d.provider_id AND i.resource_class = 'IPV4_ADDRESS'
           RETURNING (SELECT uuid::text FROM resource_providers WHERE id = i.provider_id) AS segment`,
          [routedServer],
        ],
      ])
    )[0]!.rows as { segment: string }[];
    expect(await findings()).toEqual([`segment_usage_mismatch ${lost!.segment}`]);
    const healed = await conductor.auditMesh({ fix: true });
    expect(healed.repairs.map((r) => [r.action, r.subject, r.ok, r.error])).toEqual([
      ["heal_allocations", lost!.segment, true, ""],
    ]);
    expect(await findings()).toEqual([]);
  }, 300_000);
});
