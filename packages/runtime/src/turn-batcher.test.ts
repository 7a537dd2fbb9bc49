import { describe, expect, it } from "vitest";
import { TurnBatcher } from "./turn-batcher.js";

const turn = () => new Promise((r) => setImmediate(r));

describe("TurnBatcher", () => {
  it("runs the items added in one turn together and answers each with its own result", async () => {
    const batches: number[][] = [];
    const b = new TurnBatcher(async (xs: number[]) => {
      batches.push(xs);
      return xs.map((x) => x * 10);
    });
    const first = Promise.all([b.add(1), b.add(2), b.add(3)]);
    expect(await first).toEqual([10, 20, 30]);
    expect(await b.add(4)).toBe(40);
    expect(batches).toEqual([[1, 2, 3], [4]]);
  });

  it("splits a turn into batches of maxBatch and runs at most inFlight at once", async () => {
    const batches: number[][] = [];
    let running = 0;
    let most = 0;
    const release: (() => void)[] = [];
    const b = new TurnBatcher(
      async (xs: number[]) => {
        batches.push(xs);
        most = Math.max(most, ++running);
        await new Promise<void>((r) => release.push(r));
        running--;
        return xs;
      },
      { inFlight: 2, maxBatch: 2 },
    );
    const all = Promise.all([1, 2, 3, 4, 5, 6].map((x) => b.add(x)));
    await turn();
    expect(batches).toEqual([
      [1, 2],
      [3, 4],
    ]);
    // Added while both slots are taken: goes with what is still waiting, once a slot frees.
    const late = b.add(7);
    release.shift()!();
    await turn();
    expect(batches.at(-1)).toEqual([5, 6]);
    while (release.length) {
      release.shift()!();
      await turn();
    }
    expect(await all).toEqual([1, 2, 3, 4, 5, 6]);
    expect(await late).toBe(7);
    expect(batches.at(-1)).toEqual([7]);
    expect(most).toBe(2);
  });

  it("rejects every item of a batch that fails, and goes on with the next", async () => {
    let calls = 0;
    const b = new TurnBatcher(async (xs: string[]) => {
      if (calls++ === 0) throw new Error("database gone");
      return xs.map((x) => x.toUpperCase());
    });
    const failed = await Promise.allSettled([b.add("a"), b.add("b")]);
    expect(failed.map((f) => f.status)).toEqual(["rejected", "rejected"]);
    expect(await b.add("c")).toBe("C");
  });

  it("with aloneOnError, runs the items of a failed batch again one by one, each settling on its own", async () => {
    const batches: string[][] = [];
    const b = new TurnBatcher(
      async (xs: string[]) => {
        batches.push(xs);
        if (xs.includes("bad")) throw new Error(`refused ${xs.join(",")}`);
        return xs.map((x) => x.toUpperCase());
      },
      { aloneOnError: true },
    );
    const settled = await Promise.allSettled([b.add("a"), b.add("bad"), b.add("c")]);
    expect(settled.map((s) => (s.status === "fulfilled" ? s.value : String(s.reason)))).toEqual([
      "A",
      "Error: refused bad",
      "C",
    ]);
    expect(batches).toEqual([["a", "bad", "c"], ["a"], ["bad"], ["c"]]);
  });

  it("refuses a batch answered with the wrong number of results", async () => {
    const b = new TurnBatcher(async (xs: number[]) => xs.slice(1));
    await expect(Promise.all([b.add(1), b.add(2)])).rejects.toThrow(/batch of 2 answered with 1/);
  });
});
