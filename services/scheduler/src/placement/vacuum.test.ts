// PlacementVacuum: the tables claims write are vacuumed once enough writes went through, not
// before; dead row versions are then gone (PGlite, which has no autovacuum, in-process).
import { randomUUID } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createLogger, type Database, migrationsFrom, openDatabase } from "@stratus/runtime";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Placement } from "./placement.js";
import { PlacementVacuum } from "./vacuum.js";

const dir = mkdtempSync(join(tmpdir(), "stratus-vacuum-"));
let db: Database;
let placement: Placement;
const hosts: string[] = [];

beforeAll(async () => {
  db = await openDatabase({
    service: "scheduler",
    dataDir: dir,
    migrations: migrationsFrom(new URL("../../migrations", import.meta.url).pathname),
    logger: createLogger("vacuum-test", "warn"),
  });
  placement = new Placement(db);
  for (let i = 0; i < 4; i++) {
    const p = await placement.createProvider({ name: `h-${randomUUID().slice(0, 8)}` });
    await placement.setInventories(p.uuid, 0, [
      {
        resourceClass: "VCPU",
        total: 100,
        reserved: 0,
        minUnit: 1,
        maxUnit: 100,
        stepSize: 1,
        allocationRatio: 1,
      },
    ]);
    hosts.push(p.uuid);
  }
});
afterAll(async () => {
  await db?.close();
  rmSync(dir, { recursive: true, force: true });
});

/** Dead row versions and the last manual VACUUM of a table, as PostgreSQL counts them. */
async function stats(table: string) {
  await db.query("SELECT pg_stat_force_next_flush()");
  const [row] = await db.query<{ dead: string; last: Date | null }>(
    "SELECT n_dead_tup AS dead, last_vacuum AS last FROM pg_stat_user_tables WHERE relname = $1",
    [table],
  );
  return { dead: Number(row!.dead), vacuumed: row!.last !== null };
}

async function claims(n: number): Promise<string[]> {
  const consumers: string[] = [];
  for (let i = 0; i < n; i++) {
    const consumerUuid = randomUUID();
    await placement.claimNew({
      consumerUuid,
      projectId: "p",
      userId: "u",
      allocations: [{ providerUuid: hosts[i % hosts.length]!, resources: { VCPU: 1 } }],
    });
    consumers.push(consumerUuid);
  }
  return consumers;
}

describe("PlacementVacuum", () => {
  it("vacuums the claimed tables once enough was written, and the dead versions are gone", async () => {
    const vacuum = new PlacementVacuum(placement, 50);
    // 4 providers written + 30 claims: below the threshold, nothing is vacuumed.
    const first = await claims(30);
    expect(await vacuum.maybe()).toBe(false);
    const before = await stats("inventories");
    expect(before.dead).toBeGreaterThan(0);
    expect(before.vacuumed).toBe(false);

    const second = await claims(30);
    // (Counts of this session's statements reach the statistics when flushed: flush them first,
    // or they would land after the VACUUM's and count as dead again.)
    expect((await stats("inventories")).dead).toBeGreaterThan(before.dead);
    expect(await vacuum.maybe()).toBe(true);
    expect(await stats("inventories")).toEqual({ dead: 0, vacuumed: true });
    expect((await stats("resource_providers")).dead).toBe(0);
    // Counted from there on: not again until as many more writes.
    expect(await vacuum.maybe()).toBe(false);

    // Releases delete allocations and consumers: those go too.
    for (const c of [...first, ...second]) await placement.deleteAllocations(c);
    expect((await stats("allocations")).dead).toBeGreaterThan(0);
    expect((await stats("consumers")).dead).toBeGreaterThan(0);
    expect(await vacuum.maybe()).toBe(true);
    expect((await stats("allocations")).dead).toBe(0);
    expect((await stats("consumers")).dead).toBe(0);
  });
});
