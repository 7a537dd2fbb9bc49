// Two network-adapter processes on one PostgreSQL database take 600 concurrent port creations
// for one /24: exactly 253 succeed, with 253 distinct addresses from the pool (checked over RPC
// and with SQL), and every other call is refused with ip_exhausted (Connect ResourceExhausted).
// Likewise for deferred ports on a routed network bound at once through both processes, and for
// a /12, whose free list is a window refilled while both processes take from it: its lowest
// addresses, each once.
import { randomUUID } from "node:crypto";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { NetworkService, type Port } from "@stratus/contracts/network/v1";
import { StratusError } from "@stratus/runtime";
import { credentialInterceptor, postgresAvailable } from "@stratus/runtime/testing";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { adaptersOnPostgres, type SharedDatabaseAdapters } from "./helpers.js";

const havePostgres = await postgresAvailable();
if (!havePostgres)
  console.warn("ipam-concurrency.test: PostgreSQL on 127.0.0.1:5432 is not reachable; skipping");

describe.runIf(havePostgres)("two network-adapters on one PostgreSQL database", () => {
  let shared: SharedDatabaseAdapters;

  beforeAll(async () => {
    // No scheduler: these networks need no placement, and nothing must depend on it. More ports
    // in one project than Neutron's default quota (500).
    shared = await adaptersOnPostgres("stratus_net", { QUOTA_PORT: "-1" });
  });
  afterAll(async () => {
    await shared?.close();
  });

  it("600 concurrent allocations into a /24: exactly 253 distinct addresses, the rest ip_exhausted", async () => {
    const { clients } = shared;
    const { network } = await clients[0]!.createNetwork({ name: "crowded", projectId: "p1" });
    const { subnet } = await clients[1]!.createSubnet({ networkId: network!.id, cidr: "10.20.0.0/24" });
    expect(subnet!.gatewayIp).toBe("10.20.0.1");

    const outcomes = await Promise.all(
      Array.from({ length: 600 }, async (_, i) => {
        try {
          const { port } = await clients[i % 2]!.createPort({
            networkId: network!.id,
            projectId: "p1",
            name: `p${i}`,
          });
          return { ok: true as const, ip: port!.fixedIps[0]!.ipAddress, id: port!.id };
        } catch (err) {
          return { ok: false as const, err };
        }
      }),
    );
    const ok = outcomes.filter((o) => o.ok);
    const refused = outcomes.filter((o) => !o.ok);
    expect(ok).toHaveLength(253);
    const ips = new Set(ok.map((o) => o.ip));
    expect(ips.size).toBe(253);
    for (const ip of ips) {
      const last = Number(ip.split(".")[3]);
      expect(ip.startsWith("10.20.0.")).toBe(true);
      expect(last).toBeGreaterThanOrEqual(2);
      expect(last).toBeLessThanOrEqual(254);
    }
    expect(refused).toHaveLength(347);
    for (const r of refused) {
      expect(r.err).toBeInstanceOf(StratusError);
      expect((r.err as StratusError).kind).toBe("ip_exhausted");
      expect((r.err as StratusError).message).toMatch(/No more IP addresses available on network/);
    }

    // What the database holds agrees, independently of the RPC answers.
    const sql = new pg.Client({ connectionString: shared.databaseUrl });
    await sql.connect();
    try {
      const [row] = (
        await sql.query(
          "SELECT count(*)::int AS n, count(DISTINCT ip)::int AS d, (SELECT count(*)::int FROM ip_free WHERE subnet_id = $1) AS free FROM ip_allocations WHERE subnet_id = $1",
          [subnet!.id],
        )
      ).rows;
      expect(row).toEqual({ n: 253, d: 253, free: 0 });
      expect((await sql.query("SELECT count(*)::int AS n FROM ports")).rows[0].n).toBe(253);
    } finally {
      await sql.end();
    }

    // The refusal is Connect ResourceExhausted on the wire, for any client.
    const raw = createClient(
      NetworkService,
      createConnectTransport({
        baseUrl: shared.urls[0]!,
        httpVersion: "2",
        useBinaryFormat: true,
        interceptors: [credentialInterceptor()],
      }),
    );
    const wire = await raw.createPort({ networkId: network!.id }).then(
      () => undefined,
      (e: unknown) => ConnectError.from(e),
    );
    expect(wire?.code).toBe(Code.ResourceExhausted);

    // Deleting a port frees exactly its address for the next caller, on the other process.
    const victim = ok[17]!;
    await clients[0]!.deletePort({ id: victim.id });
    const { port: again } = await clients[1]!.createPort({ networkId: network!.id, projectId: "p1" });
    expect(again!.fixedIps[0]!.ipAddress).toBe(victim.ip);
  });

  it("deferred ports bound at once through both processes onto a /26 segment: exactly 61 distinct addresses, the rest ip_exhausted", async () => {
    const { clients } = shared;
    const hosts = ["leaf1-a", "leaf1-b", "leaf2-a"];
    for (const [i, host] of hosts.entries()) {
      await clients[i % 2]!.reportHostPhysicalNetworks({
        host,
        physicalNetworks: [host.startsWith("leaf1") ? "physnet-leaf1" : "physnet-leaf2"],
        computeNodeUuid: randomUUID(),
      });
    }
    const { network } = await clients[0]!.createNetwork({
      name: "routed-crowded",
      projectId: "p1",
      segments: [
        { name: "leaf1", networkType: "vlan", physicalNetwork: "physnet-leaf1", segmentationId: 11 },
        { name: "leaf2", networkType: "vlan", physicalNetwork: "physnet-leaf2", segmentationId: 12 },
      ],
    });
    const [leaf1, leaf2] = ["leaf1", "leaf2"].map((n) => network!.segments.find((s) => s.name === n)!.id);
    const { subnet: small } = await clients[0]!.createSubnet({
      networkId: network!.id,
      segmentId: leaf1,
      cidr: "10.30.0.0/26",
    });
    await clients[1]!.createSubnet({ networkId: network!.id, segmentId: leaf2, cidr: "10.31.0.0/24" });
    const ports: Port[] = [];
    for (let i = 0; i < 120; i++) {
      ports.push((await clients[i % 2]!.createPort({ networkId: network!.id, projectId: "p1" })).port!);
    }
    // 100 onto leaf1 (61 addresses), 20 onto leaf2; most through the process that made the port
    // (its one-statement path, gathered per turn), every fifth through the other (a transaction).
    const outcomes = await Promise.all(
      ports.map(async (port, i) => {
        const through = clients[(i + (i % 5 === 0 ? 1 : 0)) % 2]!;
        const host = i < 100 ? hosts[i % 2]! : hosts[2]!;
        try {
          const bound = await through.bindPort({ portId: port.id, host });
          return { ok: true as const, i, ip: bound.port!.fixedIps[0]!.ipAddress, segment: bound.segmentId };
        } catch (err) {
          return { ok: false as const, i, err };
        }
      }),
    );
    const onLeaf1 = outcomes.filter((o) => o.i < 100);
    const bound1 = onLeaf1.flatMap((o) => (o.ok ? [o] : []));
    expect(bound1).toHaveLength(61);
    expect(new Set(bound1.map((o) => o.ip)).size).toBe(61);
    for (const o of bound1) {
      expect(o.segment).toBe(leaf1);
      expect(o.ip).toMatch(/^10\.30\.0\.\d+$/);
    }
    for (const o of onLeaf1) {
      if (o.ok) continue;
      expect(o.err).toBeInstanceOf(StratusError);
      expect((o.err as StratusError).kind).toBe("ip_exhausted");
    }
    const onLeaf2 = outcomes.filter((o) => o.i >= 100);
    expect(onLeaf2.every((o) => o.ok && o.segment === leaf2 && o.ip.startsWith("10.31.0."))).toBe(true);
    expect(new Set(onLeaf2.map((o) => (o.ok ? o.ip : ""))).size).toBe(20);

    const sql = new pg.Client({ connectionString: shared.databaseUrl });
    await sql.connect();
    try {
      const [row] = (
        await sql.query(
          `SELECT count(*)::int AS n, count(DISTINCT ip)::int AS d, count(DISTINCT port_id)::int AS p,
             (SELECT count(*)::int FROM ip_free WHERE subnet_id = $1) AS free
           FROM ip_allocations WHERE subnet_id = $1`,
          [small!.id],
        )
      ).rows;
      expect(row).toEqual({ n: 61, d: 61, p: 61, free: 0 });
      // A refused port holds nothing and is bound nowhere.
      const refused = onLeaf1.filter((o) => !o.ok).map((o) => ports[o.i]!.id);
      const held = await sql.query(
        `SELECT count(*)::int AS n FROM ports p WHERE p.id = ANY($1::uuid[])
           AND (p.binding_host_id <> '' OR EXISTS (SELECT 1 FROM ip_allocations a WHERE a.port_id = p.id))`,
        [refused],
      );
      expect(held.rows[0].n).toBe(0);
    } finally {
      await sql.end();
    }
  });

  it("1,500 concurrent allocations from a /12 through both processes: its 1,500 lowest addresses, each once", async () => {
    const { clients } = shared;
    const { network } = await clients[0]!.createNetwork({ name: "large", projectId: "p1" });
    const { subnet } = await clients[1]!.createSubnet({ networkId: network!.id, cidr: "10.16.0.0/12" });
    const made = await Promise.all(
      Array.from({ length: 1500 }, async (_, i) => {
        const { port } = await clients[i % 2]!.createPort({ networkId: network!.id, projectId: "p1" });
        return port!.fixedIps[0]!.ipAddress;
      }),
    );
    const toInt = (ip: string) => ip.split(".").reduce((n, o) => n * 256 + Number(o), 0);
    const sorted = made.map(toInt).sort((a, b) => a - b);
    const first = toInt("10.16.0.2");
    expect(sorted).toEqual(Array.from({ length: 1500 }, (_, i) => first + i));

    const sql = new pg.Client({ connectionString: shared.databaseUrl });
    await sql.connect();
    try {
      const { rows } = await sql.query(
        `SELECT (SELECT count(*)::int FROM ip_free f JOIN ip_allocations a USING (subnet_id, ip) WHERE f.subnet_id = $1) AS both,
           (SELECT count(*)::int FROM generate_series($2::bigint, (SELECT next_ip FROM ip_free_frontier WHERE subnet_id = $1) - 1) g
              WHERE NOT EXISTS (SELECT 1 FROM ip_free f WHERE f.subnet_id = $1 AND f.ip = g)
                AND NOT EXISTS (SELECT 1 FROM ip_allocations a WHERE a.subnet_id = $1 AND a.ip = g)) AS lost`,
        [subnet!.id, first],
      );
      expect(rows[0]).toEqual({ both: 0, lost: 0 });
    } finally {
      await sql.end();
    }
  });
});
