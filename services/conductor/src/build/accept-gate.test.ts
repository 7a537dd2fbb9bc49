import { describe, expect, it } from "vitest";
import { AcceptGate } from "./accept-gate.js";

describe("AcceptGate", () => {
  const clock = () => {
    let t = 1_000;
    return { now: () => t, advance: (ms: number) => (t += ms) };
  };

  it("yields while a crowd of callers is waiting, and for the hold after", () => {
    const c = clock();
    const gate = new AcceptGate({ crowd: 3, backlog: 0, concurrency: 2, holdMs: 100 }, c.now);
    const a = gate.enter();
    const b = gate.enter();
    expect(gate.limit(64, 0)).toEqual({ runs: 64 });
    const d = gate.enter();
    expect(gate.limit(64, 0)).toEqual({ runs: 2, recheckInMs: 100 });
    a();
    b();
    d();
    c.advance(60);
    expect(gate.limit(64, 0)).toEqual({ runs: 2, recheckInMs: 40 });
    c.advance(40);
    expect(gate.limit(64, 0)).toEqual({ runs: 64 });
    // Two at a time again never make a crowd of three; a call ending twice counts once.
    const e = gate.enter();
    e();
    e();
    gate.enter();
    gate.enter();
    expect(gate.limit(64, 0).runs).toBe(64);
  });

  it("yields while builds fall behind callers that keep arriving", () => {
    const c = clock();
    const gate = new AcceptGate({ crowd: 0, backlog: 64, concurrency: 2, holdMs: 100 }, c.now);
    // No caller yet: a backlog alone (a restart's sweep, say) builds at full speed.
    expect(gate.limit(64, 500)).toEqual({ runs: 64 });
    gate.enter()();
    expect(gate.limit(64, 63)).toEqual({ runs: 64 });
    expect(gate.limit(64, 64)).toEqual({ runs: 2, recheckInMs: 100 });
    c.advance(100);
    expect(gate.limit(64, 300)).toEqual({ runs: 64 });
    gate.enter()();
    expect(gate.limit(64, 300).runs).toBe(2);
  });

  it("keeps at least one build moving, never raises the limit, and can be turned off", () => {
    const c = clock();
    const gate = new AcceptGate({ crowd: 1, backlog: 0, concurrency: 0, holdMs: 50 }, c.now);
    gate.enter();
    expect(gate.limit(64, 10).runs).toBe(1);
    const wide = new AcceptGate({ crowd: 1, backlog: 0, concurrency: 8, holdMs: 50 }, c.now);
    wide.enter();
    expect(wide.limit(4, 10).runs).toBe(4);
    const off = new AcceptGate({ crowd: 0, backlog: 0, concurrency: 1, holdMs: 10 }, c.now);
    for (let i = 0; i < 100; i++) off.enter();
    expect(off.limit(64, 10_000).runs).toBe(64);
    expect(new AcceptGate(undefined, c.now).limit(64, 10_000).runs).toBe(64);
  });
});
