import type { Client } from "@connectrpc/connect";
import type { NetworkService } from "@stratus/contracts/network/v1";
import { describe, expect, it } from "vitest";
import { BoundedCache } from "./bounded-cache.js";
import { NetworkAdapterPorts } from "./peer-adapters.js";

const clock = () => {
  let t = 1_000;
  return { now: () => t, advance: (ms: number) => (t += ms) };
};

describe("BoundedCache", () => {
  it("answers an entry for maxAgeMs after it was set, then drops it", () => {
    const c = clock();
    const cache = new BoundedCache<string, number>({ maxEntries: 10, maxAgeMs: 100 }, c.now);
    cache.set("a", 1);
    c.advance(99);
    expect(cache.get("a")).toBe(1);
    c.advance(1);
    expect(cache.get("a")).toBeUndefined();
    expect(cache.size).toBe(0);
    // Setting again starts its age again.
    cache.set("a", 2);
    c.advance(50);
    cache.set("a", 3);
    c.advance(60);
    expect(cache.get("a")).toBe(3);
  });

  it("keeps at most maxEntries: the entry set longest ago goes first", () => {
    const cache = new BoundedCache<number, number>({ maxEntries: 3, maxAgeMs: 1_000_000 });
    for (let i = 0; i < 3; i++) cache.set(i, i);
    cache.set(0, 10); // set again: now the newest
    cache.set(3, 3);
    expect(cache.size).toBe(3);
    expect([0, 1, 2, 3].map((k) => cache.get(k))).toEqual([10, undefined, 2, 3]);
    for (let i = 100; i < 10_000; i++) cache.set(i, i);
    expect(cache.size).toBe(3);
    expect([9_997, 9_998, 9_999].map((k) => cache.get(k))).toEqual([9_997, 9_998, 9_999]);
  });
});

describe("the network-adapter's network answers", () => {
  it("are kept in a bounded cache: asked again once evicted or too old", async () => {
    const asked: string[] = [];
    const client = {
      async getNetwork({ id }: { id: string }) {
        asked.push(id);
        return { network: { id, name: `net-${id}`, routed: true, segments: [{ id: `seg-${id}` }] } };
      },
    } as unknown as Client<typeof NetworkService>;
    const c = clock();
    const ports = new NetworkAdapterPorts(
      () => client,
      new BoundedCache({ maxEntries: 2, maxAgeMs: 5000 }, c.now),
    );
    expect(await ports.network("a")).toEqual({ routed: true, segmentIds: ["seg-a"], name: "net-a" });
    await ports.network("a");
    await ports.network("b");
    expect(asked).toEqual(["a", "b"]);
    await ports.network("c"); // a goes
    await ports.network("b");
    await ports.network("a");
    expect(asked).toEqual(["a", "b", "c", "a"]);
    c.advance(5000);
    await ports.network("a");
    expect(asked).toEqual(["a", "b", "c", "a", "a"]);
  });
});
