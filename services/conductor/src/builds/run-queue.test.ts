// The run queue with its accept gate: while CreateServers callers crowd in and builds pile up,
// queued builds start one at a time; once the callers are gone and the hold has passed, the
// queue goes back to full concurrency without any other wake-up.
import { createLogger } from "@stratus/runtime";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { AcceptGate } from "./accept-gate.js";
import { RunQueue } from "./run-queue.js";

describe("RunQueue", () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  /** A queue whose runs last until the test ends them, with the gate on a clock the test moves. */
  function queue() {
    let t = 1_000;
    const gate = new AcceptGate({ crowd: 2, sustainMs: 0, backlog: 0, concurrency: 1, holdMs: 100 }, () => t);
    const started: string[] = [];
    const ends = new Map<string, () => void>();
    const q = new RunQueue<undefined>({
      concurrency: 3,
      gate,
      logger: createLogger("run-queue-test", "silent"),
      run: (id) => {
        started.push(id);
        return new Promise<void>((resolve) => ends.set(id, resolve));
      },
    });
    const end = async (id: string) => {
      ends.get(id)!();
      await vi.advanceTimersByTimeAsync(0);
    };
    return { q, started, end, advance: (ms: number) => (t += ms) };
  }

  it("starts one build at a time while a crowd of callers waits on queued builds", async () => {
    const { q, started, end, advance } = queue();
    const callers = [0, 1].map(() => {
      let answer!: () => void;
      const call = q.accept(() => new Promise<void>((r) => (answer = r)));
      return { call, answer: () => answer() };
    });
    for (let i = 1; i <= 7; i++) q.kick(`b${i}`);
    // Three started before anything was queued; the rest wait behind the crowd.
    expect(started).toEqual(["b1", "b2", "b3"]);
    await end("b1");
    await end("b2");
    expect(started).toEqual(["b1", "b2", "b3"]);
    await end("b3");
    expect(started).toEqual(["b1", "b2", "b3", "b4"]);
    // The callers leave; the builds keep yielding for the hold, then go at full concurrency
    // again with no run ending to notice.
    for (const c of callers) c.answer();
    await Promise.all(callers.map((c) => c.call));
    advance(99);
    await vi.advanceTimersByTimeAsync(99);
    expect(started).toEqual(["b1", "b2", "b3", "b4"]);
    advance(2);
    await vi.advanceTimersByTimeAsync(2);
    expect(started).toEqual(["b1", "b2", "b3", "b4", "b5", "b6"]);
    await end("b4");
    expect(started).toEqual(["b1", "b2", "b3", "b4", "b5", "b6", "b7"]);
  });

  it("runs a server once at a time: a kick during its run runs it again after", async () => {
    const { q, started, end } = queue();
    q.kick("a");
    q.kick("b");
    q.kick("a"); // while a runs
    expect(started).toEqual(["a", "b"]);
    await end("a");
    expect(started).toEqual(["a", "b", "a"]);
  });
});
