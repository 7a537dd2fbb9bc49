// Heartbeats are written together: many heartbeats, one statement; list() sees them at once.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createLogger, type Database, migrationsFrom, openDatabase, type Queryable } from "@stratus/runtime";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ServiceRegistry } from "./service-registry.js";

let db: Database;
const dataDir = mkdtempSync(join(tmpdir(), "stratus-registry-"));
beforeAll(async () => {
  db = await openDatabase({
    service: "conductor",
    dataDir,
    migrations: migrationsFrom(new URL("../../migrations", import.meta.url).pathname),
    logger: createLogger("test", "warn"),
  });
});
afterAll(async () => {
  await db?.close();
  rmSync(dataDir, { recursive: true, force: true });
});

describe("ServiceRegistry", () => {
  it("writes the heartbeats of a flush period in one statement, the latest per host", async () => {
    const writes: string[] = [];
    const counting: Queryable = {
      query: (sql, params, options) => {
        if (/INSERT INTO compute_services/.test(sql)) writes.push(sql);
        return db.query(sql, params, options);
      },
    };
    const now = new Date("2026-11-25T12:00:00Z");
    const registry = new ServiceRegistry(counting, 60_000, () => now, 60_000);
    const at = (s: number) => new Date(now.getTime() - s * 1000);
    for (const [host, ago] of [
      ["h1", 30],
      ["h2", 90],
      ["h1", 5],
      ["h1", 20], // older than the one already taken: ignored
    ] as const) {
      await registry.recordHeartbeat({
        binary: "nova-compute",
        host,
        zone: "",
        disabled: false,
        at: at(ago),
      });
    }
    expect(writes).toHaveLength(0); // nothing written before the flush period ends...
    const services = await registry.list({ binary: "nova-compute" }); // ...or a list asks
    expect(writes).toHaveLength(1);
    expect(services.map((s) => [s.host, s.state, s.updatedAt.toISOString()])).toEqual([
      ["h1", "up", at(5).toISOString()],
      ["h2", "down", at(90).toISOString()],
    ]);
    // A later flush never moves a host's last heartbeat back.
    await registry.recordHeartbeat({
      binary: "nova-compute",
      host: "h1",
      zone: "",
      disabled: false,
      at: at(50),
    });
    await registry.close();
    expect(writes).toHaveLength(2);
    const after = await registry.list({ host: "h1" });
    expect(after[0]!.updatedAt.toISOString()).toBe(at(5).toISOString());
  });

  it("a host whose agent stopped is down at once until it beats again; down and disabled hosts are unschedulable", async () => {
    let now = new Date("2026-11-26T12:00:00Z");
    const registry = new ServiceRegistry(db, 60_000, () => now, 60_000);
    const beat = (host: string, agoS: number, more: { stopped?: boolean; disabled?: boolean } = {}) =>
      registry.recordHeartbeat({
        binary: "nova-compute",
        host,
        zone: "",
        disabled: more.disabled ?? false,
        ...(more.stopped !== undefined ? { stopped: more.stopped } : {}),
        at: new Date(now.getTime() - agoS * 1000),
      });
    await beat("u-up", 1);
    await beat("u-stopped", 5);
    await beat("u-stopped", 1, { stopped: true });
    await beat("u-old", 120);
    await beat("u-disabled", 1, { disabled: true });
    const state = async () =>
      new Map(
        (await registry.list({ binary: "nova-compute" }))
          .filter((s) => s.host.startsWith("u-"))
          .map((s) => [s.host, s.state]),
      );
    expect(await state()).toEqual(
      new Map([
        ["u-disabled", "up"],
        ["u-old", "down"],
        ["u-stopped", "down"],
        ["u-up", "up"],
      ]),
    );
    // (h1 and h2, of the test before, are a day old: down too.)
    const ours = async () => (await registry.unschedulableHosts(0)).filter((h) => h.startsWith("u-"));
    expect(await ours()).toEqual(["u-disabled", "u-old", "u-stopped"]);
    // An older heartbeat arriving late does not undo the stop; the agent's next one does.
    await beat("u-stopped", 3);
    await registry.flush();
    expect((await state()).get("u-stopped")).toBe("down");
    now = new Date(now.getTime() + 1000);
    await beat("u-stopped", 0);
    expect((await state()).get("u-stopped")).toBe("up");
    expect(await ours()).toEqual(["u-disabled", "u-old"]);
    await registry.close();
  });
});
