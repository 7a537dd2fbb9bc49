import type { Client } from "@connectrpc/connect";
import type { SchedulerService } from "@stratus/contracts/scheduler/v1/scheduler";
import { createLogger, StratusError } from "@stratus/runtime";
import { describe, expect, it } from "vitest";
import { ScheduleBatcher } from "./schedule-batcher.js";

/** A scheduler that answers when told to, places at most `room` instances, all-or-nothing per call. */
function fakeScheduler(room: number) {
  const calls: string[][] = [];
  const gates: (() => void)[] = [];
  const client = {
    async selectDestinations(req: { spec?: { instanceUuids?: string[] } }) {
      const uuids = req.spec?.instanceUuids ?? [];
      calls.push(uuids);
      await new Promise<void>((r) => gates.push(r));
      if (uuids.length > room) throw new StratusError("no_valid_host", "No valid host was found.");
      room -= uuids.length;
      return {
        destinations: uuids.map((u) => ({
          instanceUuid: u,
          selected: { host: `host-for-${u}` },
          alternates: [],
        })),
      };
    },
  };
  const release = async () => {
    while (gates.length) gates.shift()!();
    await new Promise((r) => setTimeout(r, 0));
  };
  return { client: client as unknown as Client<typeof SchedulerService>, calls, release };
}

const spec = (uuid: string, flavor = 1n) => ({
  instanceUuids: [uuid],
  projectId: "p",
  userId: "u",
  resources: { VCPU: flavor },
});

const logger = createLogger("test", "silent");

describe("ScheduleBatcher", () => {
  it("sends at once while calls are free, batches what arrives meanwhile, keeps different specs apart", async () => {
    const s = fakeScheduler(100);
    const b = new ScheduleBatcher(s.client, logger, { maxBatch: 3, maxCalls: 1 });
    const first = b.select(spec("a"));
    const rest = ["b", "c", "d", "e"].map((u) => b.select(spec(u)));
    const other = b.select(spec("x", 2n));
    expect(s.calls).toEqual([["a"], ["x"]]);
    while (s.calls.length < 4) await s.release();
    await s.release();
    expect(s.calls).toEqual([["a"], ["x"], ["b", "c", "d"], ["e"]]);
    const answers = await Promise.all([first, ...rest, other]);
    expect(answers.map((d) => d.selected?.host)).toEqual(
      ["a", "b", "c", "d", "e", "x"].map((u) => `host-for-${u}`),
    );
  });

  it("a batch that does not fit is asked again one by one, and each gets its own answer", async () => {
    const s = fakeScheduler(2);
    const b = new ScheduleBatcher(s.client, logger, { maxBatch: 4, maxCalls: 1 });
    const blocker = b.select(spec("z"));
    const batch = ["a", "b", "c"].map((u) =>
      b.select(spec(u)).then(
        (d) => d.selected?.host,
        (e) => String(e),
      ),
    );
    for (let i = 0; i < 5; i++) await s.release();
    await blocker;
    const results = await Promise.all(batch);
    expect(s.calls.slice(0, 2)).toEqual([["z"], ["a", "b", "c"]]);
    expect(s.calls.slice(2).every((c) => c.length === 1)).toBe(true);
    expect(results.filter((r) => r?.startsWith("host-for-"))).toHaveLength(1);
    expect(results.filter((r) => r?.includes("No valid host"))).toHaveLength(2);
  });
});
