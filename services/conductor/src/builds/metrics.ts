// The build flow's Prometheus series (the process's registry, @stratus/runtime metrics):
// each step's duration and how it ended, each state a server is announced in, and the run
// queue and accept gate as they are when scraped.
import { LATENCY_BUCKETS, metricsRegistry } from "@stratus/runtime";
import { Counter, Gauge, Histogram } from "prom-client";

/** One run of one step (allocating, scheduling, binding, spawning, cleanup, deleting). */
const stepDuration = new Histogram({
  name: "stratus_build_step_duration_seconds",
  help: "Build steps run by this conductor, by step and outcome (ok; refused: the build fails or reschedules; retry: a peer was unavailable; taken: another worker holds the build)",
  labelNames: ["step", "outcome"] as const,
  buckets: LATENCY_BUCKETS,
  registers: [metricsRegistry],
});

/** Every state a server is announced in (building/scheduling … active, error, deleted). */
const announced = new Counter({
  name: "stratus_build_states_total",
  help: "Server state changes announced by this conductor, by vm_state and task_state: active and error are builds that ended",
  labelNames: ["vm_state", "task_state"] as const,
  registers: [metricsRegistry],
});

export type StepOutcome = "ok" | "refused" | "retry" | "taken";

export function observeStep(step: string, outcome: StepOutcome, startedAt: number): void {
  stepDuration.observe({ step, outcome }, (performance.now() - startedAt) / 1000);
}

export function countAnnounced(vmState: string, taskState: string): void {
  announced.inc({ vm_state: vmState, task_state: taskState || "none" });
}

/** What the queue and gate report when scraped. */
export interface QueueState {
  queued: number;
  running: number;
  accepting: number;
  yielding: boolean;
}

/** Gauges of this process's run queue and accept gate, read at each scrape. */
export function registerQueueMetrics(state: () => QueueState): void {
  new Gauge({
    name: "stratus_build_queue",
    help: "This conductor's build runs: queued (waiting to start) and running",
    labelNames: ["state"] as const,
    registers: [metricsRegistry],
    collect() {
      const s = state();
      this.set({ state: "queued" }, s.queued);
      this.set({ state: "running" }, s.running);
    },
  });
  new Gauge({
    name: "stratus_accept_gate",
    help: "CreateServers calls in progress (accepting) and whether builds yield to them now (yielding: 1)",
    labelNames: ["state"] as const,
    registers: [metricsRegistry],
    collect() {
      const s = state();
      this.set({ state: "accepting" }, s.accepting);
      this.set({ state: "yielding" }, s.yielding ? 1 : 0);
    },
  });
}
