// Claims.claimNew, the scheduler's claim, on PGlite and PostgreSQL: claims made at the same
// time go together in one statement when they all fit, and each still gets its own answer when
// they do not (capacity, a consumer that already exists, a provider that does not).
import { randomUUID } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createLogger, type Database, isStratusError, migrationsFrom, openDatabase } from "@stratus/runtime";
import { createTempDatabase, postgresAvailable, repoRoot, type TempDatabase } from "@stratus/runtime/testing";
import { afterAll, describe, expect, it } from "vitest";
import { Placement } from "../../services/scheduler/src/placement/placement.js";

const migrations = migrationsFrom(join(repoRoot, "services/scheduler/migrations"));
const logger = createLogger("claims-test", "warn");
const havePostgres = await postgresAvailable();

async function host(placement: Placement, vcpu: number): Promise<string> {
  const p = await placement.providers.create({ name: `h-${randomUUID().slice(0, 8)}` });
  await placement.providers.setInventories(p.uuid, 0, [
    {
      resourceClass: "VCPU",
      total: vcpu,
      reserved: 0,
      minUnit: 1,
      maxUnit: vcpu,
      stepSize: 1,
      allocationRatio: 1,
    },
  ]);
  return p.uuid;
}

type Outcome = "created" | "exists" | "conflict" | "invalid";

async function claim(placement: Placement, providerUuid: string, vcpu: number, consumerUuid = randomUUID()) {
  try {
    const written = await placement.claims.claimNew({
      consumerUuid,
      projectId: "p",
      userId: "u",
      allocations: [{ providerUuid, resources: { VCPU: vcpu } }],
    });
    return (written ? "created" : "exists") as Outcome;
  } catch (err) {
    if (isStratusError(err, "conflict")) return "conflict" as Outcome;
    if (isStratusError(err, "invalid_input")) return "invalid" as Outcome;
    throw err;
  }
}

const count = (outcomes: Outcome[], o: Outcome) => outcomes.filter((x) => x === o).length;

for (const backend of ["pglite", ...(havePostgres ? ["postgres"] : [])] as const) {
  describe(`claims at the same time (${backend})`, () => {
    let db: Database;
    let temp: TempDatabase | undefined;
    let dir: string;
    let opened: Placement | undefined;

    async function open(): Promise<Placement> {
      if (opened) return opened;
      dir = mkdtempSync(join(tmpdir(), "stratus-claims-"));
      if (backend === "postgres") temp = await createTempDatabase("stratus_claims");
      db = await openDatabase({ service: "scheduler", url: temp?.url, dataDir: dir, migrations, logger });
      opened = new Placement(db);
      return opened;
    }

    afterAll(async () => {
      await db?.close();
      await temp?.drop();
      if (dir) rmSync(dir, { recursive: true, force: true });
    });

    it("never hands out more than the capacity, and every claim gets its own answer", async () => {
      const placement = await open();
      const small = await host(placement, 10);
      const big = await host(placement, 100);
      const existing = randomUUID();
      expect(await claim(placement, big, 1, existing)).toBe("created");
      const outcomes = await Promise.all([
        // 40 claims of 1 VCPU on a 10-VCPU host: batches that do not fit fall back one by one.
        ...Array.from({ length: 40 }, () => claim(placement, small, 1)),
        // Claims that fit, in the same batches.
        ...Array.from({ length: 20 }, () => claim(placement, big, 2)),
        // A consumer that already holds something, and a provider that does not exist.
        claim(placement, big, 1, existing),
        claim(placement, randomUUID(), 1),
      ]);
      const onSmall = outcomes.slice(0, 40);
      expect(count(onSmall, "created")).toBe(10);
      expect(count(onSmall, "conflict")).toBe(30);
      expect(outcomes.slice(40, 60).every((o) => o === "created")).toBe(true);
      expect(outcomes[60]).toBe("exists");
      expect(outcomes[61]).toBe("invalid");

      // The database agrees: used is the sum of the allocations, one consumer per claim made.
      const [smallUsed] = await db.query<{ used: string; sum: string }>(
        `SELECT i.used, (SELECT sum(a.used) FROM allocations a WHERE a.provider_id = i.provider_id) AS sum
         FROM inventories i JOIN resource_providers p ON p.id = i.provider_id WHERE p.uuid = $1`,
        [small],
      );
      expect(Number(smallUsed!.used)).toBe(10);
      expect(Number(smallUsed!.sum)).toBe(10);
      const [bigUsed] = await db.query<{ used: string }>(
        "SELECT i.used FROM inventories i JOIN resource_providers p ON p.id = i.provider_id WHERE p.uuid = $1",
        [big],
      );
      expect(Number(bigUsed!.used)).toBe(41);
      const [consumers] = await db.query<{ n: string }>(
        "SELECT count(*) AS n FROM consumers WHERE generation = 1",
      );
      expect(Number(consumers!.n)).toBe(1 + 10 + 20);
      // Each claim is its own consumer with its own allocations.
      expect((await placement.allocations.get(existing)).allocations).toEqual([
        expect.objectContaining({ providerUuid: big, resources: { VCPU: 1 } }),
      ]);
    });

    // A PGlite statement runs on the caller's thread before the next request is read, so claims
    // would never meet one in flight: those made in one turn of the event loop are gathered.
    // Each statement raises the provider's generation once.
    if (backend === "pglite")
      it("gathers the claims of one turn into one statement", async () => {
        const placement = await open();
        const h = await host(placement, 100);
        const before = (await placement.providers.get(h)).generation;
        const outcomes = await Promise.all(Array.from({ length: 16 }, () => claim(placement, h, 1)));
        expect(outcomes.every((o) => o === "created")).toBe(true);
        expect((await placement.providers.get(h)).generation).toBe(before + 1);
        const [row] = await db.query<{ used: string }>(
          "SELECT i.used FROM inventories i JOIN resource_providers p ON p.id = i.provider_id WHERE p.uuid = $1",
          [h],
        );
        expect(Number(row!.used)).toBe(16);
      });
  });
}
