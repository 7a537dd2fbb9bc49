// The free list's window (ipam.ts), in-process on PGlite and (when reachable) PostgreSQL: a large
// subnet costs rows only for the addresses handed out next; addresses still come lowest first,
// once each, across refills; an address taken explicitly beyond the frontier is passed over; a
// release keeps the window whole; new pools make the window anew; and, on PostgreSQL, refills
// racing explicit allocations and releases leave every free address below the frontier with its
// row and no held address with one (an explicit allocation waits for a refill in flight).
import { create } from "@bufbuild/protobuf";
import {
  CreateNetworkRequestSchema,
  CreatePortRequestSchema,
  CreateSubnetRequestSchema,
  UpdateSubnetRequestSchema,
} from "@stratus/contracts/network/v1";
import { createLogger, type Database } from "@stratus/runtime";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { formatIp, parseIp } from "../ipam/ipv4.js";
import { type Caller, Outbox, type Tx } from "./context.js";
import { FreeListKeeper } from "./free-list-keeper.js";
import { refillWindow, WINDOW, WINDOW_LOW } from "./ipam.js";
import { createNetwork } from "./networks.js";
import { PortService } from "./port-service.js";
import { deletePort } from "./ports.js";
import { createSubnet, updateSubnet } from "./subnets.js";
import { openTestDatabase, testBackends } from "./test-database.js";
import { Work } from "./work.js";

const admin: Caller = { projectId: "", isAdmin: true };

// `available`: PGlite always; PostgreSQL when a server answers. Without one the PostgreSQL cases
// skip, saying so — never in CI, where testBackends() throws instead (STRATUS_REQUIRE_POSTGRES=1).
describe.each(await testBackends())("the free list's window on %s", (backend, available) => {
  let db: Database;
  let close: (() => Promise<void>) | undefined;
  let ports: PortService;
  let keeper: FreeListKeeper;
  const tx = <T>(fn: (t: Tx) => Promise<T>) =>
    db.transaction((q) => fn({ q, out: new Outbox(), caller: admin }));
  const count = async (sql: string, params: unknown[]) =>
    Number((await db.query<{ n: string }>(sql, params))[0]!.n);
  const frontier = async (subnetId: string) =>
    Number(
      (
        await db.query<{ next_ip: string }>("SELECT next_ip FROM ip_free_frontier WHERE subnet_id = $1", [
          subnetId,
        ])
      )[0]!.next_ip,
    );

  async function subnetOn(cidr: string, pools: [string, string][] = []) {
    const net = await tx((t) =>
      createNetwork(t, create(CreateNetworkRequestSchema, { name: cidr, projectId: "p1" })),
    );
    const sub = await tx((t) =>
      createSubnet(
        t,
        create(CreateSubnetRequestSchema, {
          networkId: net.id,
          cidr,
          allocationPools: pools.map(([start, end]) => ({ start, end })),
        }),
      ),
    );
    return { networkId: net.id, subnetId: sub.id };
  }

  /** Ports with automatic addresses, as the RPC makes them (per-turn statements, else transactions), in waves. */
  async function allocate(networkId: string, n: number, wave = 32): Promise<{ id: string; ip: string }[]> {
    const made: { id: string; ip: string }[] = [];
    for (let i = 0; i < n; i += wave) {
      const batch = await Promise.all(
        Array.from({ length: Math.min(wave, n - i) }, () =>
          ports.create(create(CreatePortRequestSchema, { networkId, projectId: "p1" }), admin),
        ),
      );
      made.push(...batch.map((p) => ({ id: p.id, ip: p.fixedIps[0]!.ipAddress })));
    }
    return made;
  }

  const range = (first: string, n: number) =>
    Array.from({ length: n }, (_, i) => formatIp(parseIp(first) + i));
  const byAddress = (ips: string[]) => [...ips].sort((a, b) => parseIp(a) - parseIp(b));

  beforeAll(async () => {
    if (!available) return;
    ({ db, close } = await openTestDatabase(backend, "stratus_test_ipam_window"));
    await db.query("UPDATE quota_defaults SET hard_limit = -1");
    keeper = new FreeListKeeper(db, createLogger("test", "warn"));
    // No background refills here unless a test asks: allocations refill the window themselves.
    ports = new PortService(new Work(db, async () => {}));
  });
  afterAll(async () => {
    await keeper?.close();
    await close?.();
  });

  it.skipIf(!available)(
    "a /12 keeps WINDOW rows; its addresses come lowest first and once each across refills",
    async () => {
      const { networkId, subnetId } = await subnetOn("10.16.0.0/12");
      expect(await count("SELECT count(*) AS n FROM ip_free WHERE subnet_id = $1", [subnetId])).toBe(WINDOW);
      expect(await frontier(subnetId)).toBe(parseIp("10.16.0.2") + WINDOW);

      const n = WINDOW + 300;
      const made = await allocate(networkId, n);
      const ips = made.map((m) => m.ip);
      expect(new Set(ips).size).toBe(n);
      // Exactly the n lowest addresses of the pool (the gateway 10.16.0.1 excluded).
      expect(byAddress(ips)).toEqual(range("10.16.0.2", n));
      expect(
        await count(
          "SELECT count(*) AS n FROM ip_free f JOIN ip_allocations a USING (subnet_id, ip) WHERE f.subnet_id = $1",
          [subnetId],
        ),
      ).toBe(0);
    },
  );

  it.skipIf(!available)(
    "an address taken explicitly beyond the frontier is passed over; released, it is free without a row",
    async () => {
      const { networkId, subnetId } = await subnetOn("10.32.0.0/21");
      const beyond = formatIp(parseIp("10.32.0.2") + WINDOW + 5);
      await ports.create(
        create(CreatePortRequestSchema, { networkId, projectId: "p1", fixedIps: [{ ipAddress: beyond }] }),
        admin,
      );
      expect(
        await count("SELECT count(*) AS n FROM ip_free WHERE subnet_id = $1 AND ip = $2", [
          subnetId,
          parseIp(beyond),
        ]),
      ).toBe(0);

      const made = await allocate(networkId, WINDOW + 20);
      const ips = made.map((m) => m.ip);
      expect(ips).not.toContain(beyond);
      expect(byAddress(ips)).toEqual(range("10.32.0.2", WINDOW + 21).filter((ip) => ip !== beyond));

      // Released below the frontier: the row is back, and the next automatic pick takes it.
      const low = made.find((m) => m.ip === "10.32.0.7")!;
      await tx((t) => deletePort(t, low.id));
      expect(
        await count("SELECT count(*) AS n FROM ip_free WHERE subnet_id = $1 AND ip = $2", [
          subnetId,
          parseIp("10.32.0.7"),
        ]),
      ).toBe(1);
      expect((await allocate(networkId, 1))[0]!.ip).toBe("10.32.0.7");
    },
  );

  it.skipIf(!available)("new pools make the window anew; held addresses stay held", async () => {
    const { networkId, subnetId } = await subnetOn("10.48.0.0/20", [["10.48.0.10", "10.48.0.20"]]);
    const first = await allocate(networkId, 3);
    expect(first.map((m) => m.ip)).toEqual(["10.48.0.10", "10.48.0.11", "10.48.0.12"]);
    await tx((t) =>
      updateSubnet(
        t,
        create(UpdateSubnetRequestSchema, {
          id: subnetId,
          updateAllocationPools: true,
          allocationPools: [{ start: "10.48.0.11", end: "10.48.15.254" }],
        }),
      ),
    );
    // WINDOW free rows from the new pool's start, passing over the two it holds.
    expect(await count("SELECT count(*) AS n FROM ip_free WHERE subnet_id = $1", [subnetId])).toBe(WINDOW);
    expect(await frontier(subnetId)).toBe(parseIp("10.48.0.11") + WINDOW + 2);
    expect((await allocate(networkId, 2)).map((m) => m.ip)).toEqual(["10.48.0.13", "10.48.0.14"]);
  });

  it.skipIf(!available)("the keeper refills a window that runs low, in the background", async () => {
    const { networkId, subnetId } = await subnetOn("10.64.0.0/16");
    await allocate(networkId, WINDOW - WINDOW_LOW + 8);
    expect(await count("SELECT count(*) AS n FROM ip_free WHERE subnet_id = $1", [subnetId])).toBe(
      WINDOW_LOW - 8,
    );
    // 64 allocations counted: the keeper looks, and fills the window up again.
    for (let i = 0; i < 64; i++) keeper.note([subnetId]);
    await keeper.close();
    expect(await count("SELECT count(*) AS n FROM ip_free WHERE subnet_id = $1", [subnetId])).toBe(WINDOW);
  });

  it.skipIf(!available)("a /8 is made with a window, not with its 16 million addresses", async () => {
    const { networkId, subnetId } = await subnetOn("10.0.0.0/8");
    expect(await count("SELECT count(*) AS n FROM ip_free WHERE subnet_id = $1", [subnetId])).toBe(WINDOW);
    expect((await allocate(networkId, 2)).map((m) => m.ip)).toEqual(["10.0.0.2", "10.0.0.3"]);
  });

  it.skipIf(!available || backend !== "PostgreSQL")(
    "refills racing explicit allocations and releases keep the window exact",
    async () => {
      const { networkId, subnetId } = await subnetOn("10.80.0.0/20");
      const first = parseIp("10.80.0.2");
      // Explicit addresses on both sides of the frontiers the refills will move through.
      const explicit = Array.from({ length: 160 }, (_, i) => formatIp(first + WINDOW - 20 + i * 3));
      const take = (ipAddress: string) =>
        ports.create(
          create(CreatePortRequestSchema, { networkId, projectId: "p1", fixedIps: [{ ipAddress }] }),
          admin,
        );
      const before = await Promise.all(explicit.filter((_, i) => i % 2 === 0).map(take));
      await Promise.all([
        ...before.map((p) => tx((t) => deletePort(t, p.id))),
        ...Array.from({ length: 24 }, () => db.transaction((q) => refillWindow(q, subnetId, 20))),
        ...explicit.filter((_, i) => i % 2 === 1).map(take),
      ]);
      const next = await frontier(subnetId);
      expect(
        await count(
          "SELECT count(*) AS n FROM ip_free f JOIN ip_allocations a USING (subnet_id, ip) WHERE f.subnet_id = $1",
          [subnetId],
        ),
      ).toBe(0);
      const missing = await count(
        `SELECT count(*) AS n FROM generate_series($2::bigint, $3::bigint - 1) g
         WHERE NOT EXISTS (SELECT 1 FROM ip_free f WHERE f.subnet_id = $1 AND f.ip = g)
           AND NOT EXISTS (SELECT 1 FROM ip_allocations a WHERE a.subnet_id = $1 AND a.ip = g)`,
        [subnetId, first, next],
      );
      expect(missing).toBe(0);
    },
  );

  it.skipIf(!available || backend !== "PostgreSQL")(
    "an explicit allocation beyond the frontier waits for a refill in flight instead of racing it",
    async () => {
      const { networkId, subnetId } = await subnetOn("10.88.0.0/20");
      const wanted = formatIp((await frontier(subnetId)) + 1);
      let release!: () => void;
      const gate = new Promise<void>((r) => {
        release = r;
      });
      let refilled!: () => void;
      const inFlight = new Promise<void>((r) => {
        refilled = r;
      });
      // A refill that has listed the next addresses (the wanted one among them) and not committed.
      const refill = db.transaction(async (q) => {
        await refillWindow(q, subnetId, 10);
        refilled();
        await gate;
      });
      await inFlight;
      let settled = false;
      const explicit = ports
        .create(
          create(CreatePortRequestSchema, { networkId, projectId: "p1", fixedIps: [{ ipAddress: wanted }] }),
          admin,
        )
        .finally(() => {
          settled = true;
        });
      // The refill stays open until the allocation has either finished or waits for a lock.
      const waiting = () =>
        count(
          "SELECT count(*) AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'",
          [],
        );
      while (!settled && (await waiting()) === 0) await new Promise((r) => setTimeout(r, 10));
      release();
      await Promise.all([refill, explicit]);
      expect(
        await count("SELECT count(*) AS n FROM ip_free WHERE subnet_id = $1 AND ip = $2", [
          subnetId,
          parseIp(wanted),
        ]),
      ).toBe(0);
      expect(
        await count("SELECT count(*) AS n FROM ip_allocations WHERE subnet_id = $1 AND ip = $2", [
          subnetId,
          parseIp(wanted),
        ]),
      ).toBe(1);
    },
  );
});
