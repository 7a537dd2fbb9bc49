import { describe, expect, it } from "vitest";
import { AcceptGate } from "./accept-gate.js";

describe("AcceptGate", () => {
  const clock = () => {
    let t = 1_000;
    return { now: () => t, advance: (ms: number) => (t += ms) };
  };

  it("yields while a crowd of callers waits on builds that pile up, and for the hold after", () => {
    const c = clock();
    const gate = new AcceptGate({ crowd: 3, sustainMs: 20, backlog: 0, concurrency: 2, holdMs: 100 }, c.now);
    const a = gate.enter();
    const b = gate.enter();
    expect(gate.limit(64, 3)).toEqual({ runs: 64 });
    const d = gate.enter();
    // A crowd for less than sustainMs is a burst: no yielding yet.
    c.advance(19);
    expect(gate.limit(64, 3)).toEqual({ runs: 64 });
    c.advance(1);
    // With nothing queued there is nothing to hold back (callers waiting for their builds).
    expect(gate.limit(64, 2)).toEqual({ runs: 64 });
    expect(gate.limit(64, 3)).toEqual({ runs: 2, recheckInMs: 100 });
    a();
    b();
    d();
    c.advance(60);
    expect(gate.limit(64, 3)).toEqual({ runs: 2, recheckInMs: 40 });
    c.advance(40);
    expect(gate.limit(64, 3)).toEqual({ runs: 64 });
    // Two at a time again never make a crowd of three; a call ending twice counts once.
    const e = gate.enter();
    e();
    e();
    const f = gate.enter();
    gate.enter();
    c.advance(50);
    expect(gate.limit(64, 3).runs).toBe(64);
    // A crowd that breaks up starts its clock again when it forms again.
    const g = gate.enter();
    c.advance(15);
    g();
    gate.enter();
    c.advance(15);
    expect(gate.limit(64, 3).runs).toBe(64);
    c.advance(5);
    expect(gate.limit(64, 3).runs).toBe(2);
    f();
  });

  it("yields while builds fall behind callers that keep arriving", () => {
    const c = clock();
    const gate = new AcceptGate({ crowd: 0, sustainMs: 0, backlog: 64, concurrency: 2, holdMs: 100 }, c.now);
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
    const gate = new AcceptGate({ crowd: 1, sustainMs: 0, backlog: 0, concurrency: 0, holdMs: 50 }, c.now);
    gate.enter();
    expect(gate.limit(64, 10).runs).toBe(1);
    const wide = new AcceptGate({ crowd: 1, sustainMs: 0, backlog: 0, concurrency: 8, holdMs: 50 }, c.now);
    wide.enter();
    expect(wide.limit(4, 10).runs).toBe(4);
    const off = new AcceptGate({ crowd: 0, sustainMs: 0, backlog: 0, concurrency: 1, holdMs: 10 }, c.now);
    for (let i = 0; i < 100; i++) off.enter();
    expect(off.limit(64, 10_000).runs).toBe(64);
    expect(new AcceptGate(undefined, c.now).limit(64, 10_000).runs).toBe(64);
  });
});
