// Two scheduler processes on one PostgreSQL database take 500 concurrent single-instance requests
// for 20 small hosts: no provider is ever over-committed (checked with SQL afterwards) and every
// refused request is a NoValidHost; a placement write through one reaches the other's pools.
import { randomUUID } from "node:crypto";
import { PlacementService } from "@stratus/contracts/scheduler/v1/placement";
import { SchedulerService } from "@stratus/contracts/scheduler/v1/scheduler";
import { StratusError, serviceClient } from "@stratus/runtime";
import {
  createTempDatabase,
  postgresAvailable,
  type ServiceProcess,
  startNats,
  startService,
  type TempDatabase,
  type TestNats,
} from "@stratus/runtime/testing";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { big, registerHost } from "./helpers.js";

const havePostgres = await postgresAvailable();
if (!havePostgres) console.warn("concurrency.test: PostgreSQL on 127.0.0.1:5432 is not reachable; skipping");

describe.runIf(havePostgres)("two schedulers on one PostgreSQL database", () => {
  let nats: TestNats;
  let db: TempDatabase;
  const schedulers: ServiceProcess[] = [];

  beforeAll(async () => {
    nats = await startNats();
    db = await createTempDatabase("stratus_sched");
    const env = { NATS_URL: nats.url, DATABASE_URL: db.url, LOG_LEVEL: "warn" };
    // Started together: both run the migrations, serialised by the advisory lock. The second logs
    // at debug, where it says when it heard of another scheduler's placement write.
    schedulers.push(
      ...(await Promise.all([
        startService("scheduler", env),
        startService("scheduler", { ...env, LOG_LEVEL: "debug" }),
      ])),
    );
  });
  afterAll(async () => {
    await Promise.all(schedulers.map((s) => s.stop()));
    await nats?.stop();
    await db?.drop();
  });

  it("500 concurrent requests against 20 hosts never over-commit; refusals are NoValidHost", async () => {
    const placement = serviceClient(PlacementService, schedulers[0]!.url);
    for (let i = 0; i < 20; i++) {
      await registerHost(placement, `small-${i}`, { vcpu: 4, ramMb: 4096, diskGb: 40 });
    }
    const clients = schedulers.map((s) => serviceClient(SchedulerService, s.url));
    const flavor = big({ VCPU: 1, MEMORY_MB: 1024, DISK_GB: 10 });
    const outcomes = await Promise.all(
      Array.from({ length: 500 }, async (_, i) => {
        try {
          const res = await clients[i % 2]!.selectDestinations(
            {
              spec: { instanceUuids: [randomUUID()], projectId: "p", userId: "u", resources: flavor },
            },
            { timeoutMs: 180_000 },
          ); // 500 in flight on 2 busy cores: latency is not what this test is about
          return { ok: true as const, host: res.destinations[0]!.selected!.host };
        } catch (err) {
          return { ok: false as const, err };
        }
      }),
    );
    const refused = outcomes.filter((o) => !o.ok);
    const placed = outcomes.filter((o) => o.ok);
    for (const r of refused) {
      expect(r.err).toBeInstanceOf(StratusError);
      expect((r.err as StratusError).kind).toBe("no_valid_host");
    }
    // 20 hosts x 4 instances each: at most 80, and the schedulers should find all of them.
    expect(placed.length).toBe(80);

    const client = new pg.Client({ connectionString: db.url });
    await client.connect();
    try {
      const over = await client.query(
        `SELECT p.name, i.resource_class, i.capacity, sum(a.used) AS allocated
         FROM inventories i JOIN resource_providers p ON p.id = i.provider_id
         LEFT JOIN allocations a ON a.provider_id = i.provider_id AND a.resource_class = i.resource_class
         GROUP BY p.name, i.resource_class, i.capacity, i.used
         HAVING coalesce(sum(a.used), 0) > i.capacity OR coalesce(sum(a.used), 0) <> i.used`,
      );
      expect(over.rows).toEqual([]);
      const total = await client.query(
        "SELECT resource_class, sum(used)::int AS used FROM allocations GROUP BY resource_class ORDER BY 1",
      );
      expect(total.rows).toEqual([
        { resource_class: "DISK_GB", used: 800 },
        { resource_class: "MEMORY_MB", used: 80 * 1024 },
        { resource_class: "VCPU", used: 80 },
      ]);
      const consumers = await client.query("SELECT count(*)::int AS n FROM consumers WHERE generation > 0");
      expect(consumers.rows[0].n).toBe(placed.length);
    } finally {
      await client.end();
    }
  });

  it("a placement write through one scheduler is seen by the other's next SelectDestinations", async () => {
    const a = serviceClient(PlacementService, schedulers[0]!.url);
    const tag = `CUSTOM_T${randomUUID().replaceAll("-", "").slice(0, 10).toUpperCase()}`;
    // tagged-0 is twice the size: the emptiest host, as long as nobody takes from it.
    const hosts: string[] = [];
    for (let i = 0; i < 3; i++) {
      hosts.push(
        await registerHost(
          a,
          `tagged-${i}`,
          i === 0 ? { vcpu: 16, ramMb: 32768, diskGb: 100 } : { vcpu: 8, ramMb: 16384, diskGb: 100 },
          { traits: [tag] },
        ),
      );
    }
    const onB = serviceClient(SchedulerService, schedulers[1]!.url);
    const spec = () => ({
      instanceUuids: [randomUUID()],
      projectId: "p",
      userId: "u",
      resources: big({ VCPU: 1, MEMORY_MB: 1024, DISK_GB: 1 }),
      requiredTraits: [tag],
      maxAlternates: 2,
    });
    // B keeps these hosts in a pool now, tagged-0 first.
    expect((await onB.selectDestinations({ spec: spec() })).destinations[0]!.selected!.computeNodeUuid).toBe(
      hosts[0],
    );
    // Through A, someone else takes most of tagged-0 (3 VCPU and 2 GiB left).
    const requestId = `req-${randomUUID()}`;
    await a.putAllocations(
      {
        consumerUuid: randomUUID(),
        projectId: "other",
        userId: "other",
        consumerGeneration: 0n,
        allocations: [{ providerUuid: hosts[0]!, resources: big({ VCPU: 12, MEMORY_MB: 28672 }) }],
      },
      { headers: { "x-openstack-request-id": requestId } },
    );
    // B has handled A's event once it says so: the event carries the write's request id.
    await vi.waitFor(
      () => {
        const heard = schedulers[1]!.output.some(
          (line) => line.includes(`"request_id":"${requestId}"`) && line.includes("pools dropped"),
        );
        if (!heard) throw new Error("scheduler B has not handled A's placement write yet");
      },
      { timeout: 15_000, interval: 20 },
    );
    const d = (await onB.selectDestinations({ spec: spec() })).destinations[0]!;
    expect(d.selected!.computeNodeUuid).not.toBe(hosts[0]);
    expect(d.alternates.at(-1)!.computeNodeUuid).toBe(hosts[0]);
  });
});
