import { describe, expect, it } from "vitest";
import { AcceptGate } from "./accept-gate.js";

describe("AcceptGate", () => {
  const clock = () => {
    let t = 1_000;
    return { now: () => t, advance: (ms: number) => (t += ms) };
  };

  it("lets builds run at full concurrency until a crowd of callers is being accepted", () => {
    const c = clock();
    const gate = new AcceptGate({ crowd: 3, concurrency: 2, holdMs: 100 }, c.now);
    const a = gate.enter();
    const b = gate.enter();
    expect(gate.limit(64)).toEqual({ runs: 64 });
    const d = gate.enter();
    expect(gate.limit(64)).toEqual({ runs: 2, recheckInMs: 100 });
    a();
    b();
    d();
    // The crowd has gone, but builds keep yielding for the hold, then go back to full speed.
    c.advance(60);
    expect(gate.limit(64)).toEqual({ runs: 2, recheckInMs: 40 });
    c.advance(40);
    expect(gate.limit(64)).toEqual({ runs: 64 });
  });

  it("keeps at least one build moving and never raises the limit above full", () => {
    const c = clock();
    const gate = new AcceptGate({ crowd: 1, concurrency: 0, holdMs: 50 }, c.now);
    gate.enter();
    expect(gate.limit(64).runs).toBe(1);
    const wide = new AcceptGate({ crowd: 1, concurrency: 8, holdMs: 50 }, c.now);
    wide.enter();
    expect(wide.limit(4).runs).toBe(4);
  });

  it("counts a call once however often it ends, and never yields when turned off", () => {
    const c = clock();
    const gate = new AcceptGate({ crowd: 2, concurrency: 1, holdMs: 10 }, c.now);
    const a = gate.enter();
    a();
    a();
    gate.enter();
    // One call in progress (a ended once): no crowd.
    expect(gate.limit(64).runs).toBe(64);
    gate.enter();
    expect(gate.limit(64).runs).toBe(1);
    const off = new AcceptGate({ crowd: 0, concurrency: 1, holdMs: 10 }, c.now);
    for (let i = 0; i < 100; i++) off.enter();
    expect(off.limit(64).runs).toBe(64);
    expect(new AcceptGate(undefined, c.now).limit(64).runs).toBe(64);
  });
});
