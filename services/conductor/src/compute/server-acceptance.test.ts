// ServerAcceptance.create against the real schema (embedded PGlite): the single-statement insert writes
// every row of a build request, the project usage kept by triggers equals a count of the live
// servers through creates, deletes and a purge, and quota and client tokens still hold.
import type { Database } from "@stratus/runtime";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openTestDatabase } from "../testing/database.js";
import { newServersRequest, tiny } from "../testing/requests.js";
import type { FlavorRecord } from "./flavors.js";
import { Quotas } from "./quotas.js";
import { ServerAcceptance } from "./server-acceptance.js";
import { Servers } from "./servers.js";

const medium: FlavorRecord = { ...tiny, id: "3", name: "m1.medium", vcpus: 2, ramMb: 4096 };
const request = newServersRequest;

describe("ServerAcceptance.create and project usage (PGlite)", () => {
  let db: Database;
  let close: () => Promise<void>;
  let servers: Servers;
  let quotas: Quotas;
  let acceptance: ServerAcceptance;

  beforeAll(async () => {
    ({ db, close } = await openTestDatabase("servers-test"));
    servers = new Servers(db);
    quotas = new Quotas(db, { instances: 10, cores: 20, ram: 51200 });
    acceptance = new ServerAcceptance(db, quotas, servers);
  });
  afterAll(async () => {
    await close?.();
  });

  const counted = async (projectId: string) => {
    const [r] = await db.query<{ instances: number; cores: number; ram: number }>(
      `SELECT count(*)::int AS instances, coalesce(sum((flavor->>'vcpus')::int), 0)::int AS cores,
         coalesce(sum((flavor->>'ramMb')::int), 0)::int AS ram
       FROM servers WHERE project_id = $1 AND NOT deleted`,
      [projectId],
    );
    return r;
  };

  it("writes the build request, servers, build state and create actions in one go", async () => {
    const made = await acceptance.create(request("p1", { name: "web", minCount: 3, maxCount: 3 }));
    expect(made.created).toBe(true);
    expect(made.servers.map((s) => [s.name, s.launchIndex, s.vmState, s.taskState])).toEqual([
      ["web-1", 0, "building", "scheduling"],
      ["web-2", 1, "building", "scheduling"],
      ["web-3", 2, "building", "scheduling"],
    ]);
    expect(made.servers[0]).toMatchObject({
      projectId: "p1",
      flavor: tiny,
      metadata: { k: "v" },
      hostname: "web-1",
      reservationId: made.reservationId,
      deleted: false,
      fault: undefined,
    });
    // What create answers is what a later read sees.
    const listed = await servers.list({ reservationId: made.reservationId });
    expect([...listed].sort((a, b) => a.launchIndex - b.launchIndex)).toEqual(made.servers);
    const ids = made.servers.map((s) => s.id);
    const [builds] = await db.query<{ n: number }>(
      "SELECT count(*)::int AS n FROM server_builds WHERE server_id = ANY($1::uuid[]) AND phase = 'allocating' AND network_mode = 'none' AND max_attempts = 3",
      [ids],
    );
    const [actions] = await db.query<{ n: number }>(
      "SELECT count(*)::int AS n FROM instance_actions WHERE server_id = ANY($1::uuid[]) AND action = 'create' AND request_id = 'req-test'",
      [ids],
    );
    expect([builds!.n, actions!.n]).toEqual([3, 3]);
  });

  it("usage follows creates, deletes and flavor changes; quota counts it", async () => {
    const p = "p2";
    const a = await acceptance.create(request(p, { minCount: 4, maxCount: 4 }));
    await acceptance.create(request(p, { flavor: medium }));
    expect(await quotas.usageOf(p)).toEqual(await counted(p));
    expect(await quotas.usageOf(p)).toEqual({ instances: 5, cores: 6, ram: 4 * 512 + 4096 });

    await db.query("UPDATE servers SET deleted = true, vm_state = 'deleted' WHERE id = $1", [
      a.servers[0]!.id,
    ]);
    await db.query("UPDATE servers SET task_state = 'spawning' WHERE id = $1", [a.servers[1]!.id]);
    await db.query("UPDATE servers SET flavor = $2 WHERE id = $1", [
      a.servers[2]!.id,
      JSON.stringify(medium),
    ]);
    expect(await quotas.usageOf(p)).toEqual(await counted(p));
    expect(await quotas.usageOf(p)).toEqual({ instances: 4, cores: 6, ram: 2 * 512 + 2 * 4096 });

    // 4 of 10 instances used: 6 more fit, 7 do not; max_count is lowered to what fits.
    expect((await acceptance.create(request(p, { minCount: 1, maxCount: 9 }))).servers).toHaveLength(6);
    await expect(acceptance.create(request(p))).rejects.toMatchObject({ kind: "quota_exceeded" });
    expect(await quotas.usageOf(p)).toEqual(await counted(p));

    // A deleted server gives its place back.
    await db.query("UPDATE servers SET deleted = true WHERE id = $1", [a.servers[3]!.id]);
    expect((await acceptance.create(request(p))).servers).toHaveLength(1);
    expect(await quotas.usageOf(p)).toEqual(await counted(p));
    expect(await quotas.usageOf("nobody")).toEqual({ instances: 0, cores: 0, ram: 0 });
  });

  it("the same client token answers the first call's servers and creates nothing more", async () => {
    const first = await acceptance.create(request("p3", { clientToken: "t-1", minCount: 2, maxCount: 2 }));
    const again = await acceptance.create(request("p3", { clientToken: "t-1", minCount: 2, maxCount: 2 }));
    expect(again.created).toBe(false);
    expect(again.reservationId).toBe(first.reservationId);
    expect(again.servers.map((s) => s.id)).toEqual(first.servers.map((s) => s.id));
    expect((await quotas.usageOf("p3")).instances).toBe(2);
  });

  it("concurrent creates of one project (accepted together): quota exact, tokens once", async () => {
    const p = "p4";
    const calls = Array.from({ length: 15 }, (_, i) =>
      acceptance.create(request(p, { name: `c-${i}`, clientToken: i < 2 ? "same" : "" })).then(
        (r) => ({ ok: true as const, r }),
        (err: unknown) => ({ ok: false as const, err }),
      ),
    );
    const results = await Promise.all(calls);
    const [first, second] = results;
    expect(first!.ok && second!.ok).toBe(true);
    if (first!.ok && second!.ok) {
      expect(second!.r.reservationId).toBe(first!.r.reservationId);
      expect(second!.r.servers.map((s) => s.id)).toEqual(first!.r.servers.map((s) => s.id));
    }
    const refused = results.filter((x) => !x.ok);
    expect(refused).toHaveLength(4); // 14 distinct requests (two share a token), 10 fit
    for (const x of refused) if (!x.ok) expect(x.err).toMatchObject({ kind: "quota_exceeded" });
    expect(await quotas.usageOf(p)).toEqual(await counted(p));
    expect((await quotas.usageOf(p)).instances).toBe(10);
    const [br] = await db.query<{ n: number }>(
      "SELECT count(*)::int AS n FROM build_requests WHERE project_id = $1",
      [p],
    );
    expect(br!.n).toBe(10);
  });
});
