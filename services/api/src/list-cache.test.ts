// The server list cache on its own: what it serves, and what makes it forget.
import { describe, expect, it } from "vitest";
import { ALL_PROJECTS, ListCache } from "./list-cache.js";

const body = (s: string) => Buffer.from(s);

function cache(ttlMs = 1000, maxBytes = 1 << 20) {
  let now = 0;
  const c = new ListCache({ ttlMs, maxBytes, now: () => now });
  return { c, advance: (ms: number) => (now += ms) };
}

describe("ListCache", () => {
  it("serves what was put until the project's servers change; other projects keep theirs", () => {
    const { c } = cache();
    c.put("a1", c.ticket("pa"), body("A"));
    c.put("b1", c.ticket("pb"), body("B"));
    expect(c.get("a1")?.toString()).toBe("A");
    c.changed(["pa"]);
    expect(c.get("a1")).toBeUndefined();
    expect(c.get("b1")?.toString()).toBe("B");
  });

  it("does not keep an answer whose project changed while it was being made", () => {
    const { c } = cache();
    const ticket = c.ticket("pa");
    c.changed(["pa"]); // the event arrives while the conductor is being asked
    c.put("a1", ticket, body("stale"));
    expect(c.get("a1")).toBeUndefined();
    c.put("a1", c.ticket("pa"), body("fresh"));
    expect(c.get("a1")?.toString()).toBe("fresh");
  });

  it("drops all-projects answers on any change", () => {
    const { c } = cache();
    c.put("all", c.ticket(ALL_PROJECTS), body("*"));
    expect(c.get("all")?.toString()).toBe("*");
    c.changed(["somebody-else"]);
    expect(c.get("all")).toBeUndefined();
  });

  it("forgets an answer after ttlMs (a lost event) and is off with ttlMs 0", () => {
    const { c, advance } = cache(500);
    c.put("a1", c.ticket("pa"), body("A"));
    advance(499);
    expect(c.get("a1")?.toString()).toBe("A");
    advance(2);
    expect(c.get("a1")).toBeUndefined();
    const off = cache(0).c;
    expect(off.enabled).toBe(false);
    off.put("a1", off.ticket("pa"), body("A"));
    expect(off.get("a1")).toBeUndefined();
  });

  it("while suspended (NATS down) serves and keeps nothing; tickets from before stay void", () => {
    const { c } = cache();
    c.put("a1", c.ticket("pa"), body("A"));
    const before = c.ticket("pa");
    c.suspend();
    expect(c.enabled).toBe(false);
    expect(c.get("a1")).toBeUndefined();
    c.put("a2", c.ticket("pa"), body("A2"));
    c.resume();
    expect(c.get("a1")).toBeUndefined();
    expect(c.get("a2")).toBeUndefined();
    c.put("a3", before, body("made before the gap"));
    expect(c.get("a3")).toBeUndefined();
    c.put("a3", c.ticket("pa"), body("A3"));
    expect(c.get("a3")?.toString()).toBe("A3");
  });

  it("keeps at most maxBytes, dropping the oldest answers first", () => {
    const { c } = cache(1000, 40);
    for (const k of ["k1", "k2", "k3", "k4", "k5"]) c.put(k, c.ticket("pa"), body("x".repeat(10)));
    expect(c.get("k1")).toBeUndefined();
    expect(c.get("k5")?.length).toBe(10);
    expect(c.size).toBe(4);
    // An answer bigger than a quarter of the budget is not kept at all.
    c.put("big", c.ticket("pa"), body("y".repeat(11)));
    expect(c.get("big")).toBeUndefined();
  });

  it("clients missing at once share one making of the answer, unless the project changed since", async () => {
    const { c } = cache();
    let made = 0;
    const releases: ((b: Buffer) => void)[] = [];
    const make = () =>
      new Promise<Buffer>((resolve) => {
        made++;
        releases.push(resolve);
      });
    const first = c.fill("a1", "pa", make);
    const second = c.fill("a1", "pa", make);
    expect(made).toBe(1);
    c.changed(["pa"]); // a write lands while the owner is asked: later clients must not join
    const third = c.fill("a1", "pa", make);
    expect(made).toBe(2);
    releases[0]!(body("old"));
    releases[1]!(body("new"));
    expect((await first).toString()).toBe("old");
    expect((await second).toString()).toBe("old");
    expect((await third).toString()).toBe("new");
    expect(c.get("a1")?.toString()).toBe("new");

    // A failure reaches everyone who joined, and nothing is kept.
    const failing = () => Promise.reject(new Error("conductor down"));
    const [x, y] = [c.fill("b1", "pb", failing), c.fill("b1", "pb", failing)];
    await expect(x).rejects.toThrow("conductor down");
    await expect(y).rejects.toThrow("conductor down");
    expect(c.get("b1")).toBeUndefined();
  });
});
