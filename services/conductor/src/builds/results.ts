// Build results from compute agents (durable consumer conductor-results, shared by replicas): a
// success makes the server ACTIVE; a failure moves the build to an alternate, to the scheduler
// again, or to cleanup (fail.ts). What follows a recorded result (re-bind, resend, cleanup) runs
// from the row.

import { giveBackUntilTimeout } from "./advance.js";
import { type BuildResult, StaleLease, stepEvent } from "./build.js";
import { announce, type BuildContext } from "./build-context.js";
import type { BuildRun } from "./build-run.js";
import { attemptFailed } from "./fail.js";
import type { RunQueue } from "./run-queue.js";

/** What result handling needs of the run queue: one run (or result) per server at a time. */
type Runs = Pick<RunQueue<never>, "settle" | "isActive" | "hold" | "kick">;

export class Results {
  constructor(
    private readonly ctx: BuildContext,
    private readonly queue: Runs,
  ) {}

  /**
   * Handles a result. False when it cannot be handled now (another worker holds the build): the
   * caller redelivers it later.
   */
  async onResult(r: BuildResult): Promise<boolean> {
    const { store } = this.ctx;
    await this.queue.settle(r.serverId);
    if (r.success && !this.queue.isActive(r.serverId) && (await this.succeeded(r))) return true;
    let run = await store.acquire(r.serverId);
    // A run of ours started meanwhile (a sweep or a second kick): wait for it rather than
    // sending the result back for redelivery.
    for (let i = 0; !run && i < 3 && this.queue.isActive(r.serverId); i++) {
      await this.queue.settle(r.serverId);
      run = await store.acquire(r.serverId);
    }
    if (!run) {
      const row = await store.progress(r.serverId);
      // Unknown, finished or superseded: nothing to do. A result for an attempt the row does not
      // show yet (an attempt is recorded just after its command is sent, by whoever holds the
      // build) is kept for later.
      return !row || row.phase === "done" || row.attempt > r.attempt;
    }
    const held = run;
    try {
      return await this.queue.hold(
        r.serverId,
        this.ctx.leases.hold(this.ctx, held, (ctx) => this.record(ctx, held, r)),
      );
    } finally {
      // Work left (a re-bind on an alternate, a cleanup): run it now rather than at the next sweep.
      if (run.row.phase !== "done") this.queue.kick(r.serverId);
    }
  }

  /** Records the result on the build this run holds; false: to be redelivered. */
  private async record(ctx: BuildContext, run: BuildRun, r: BuildResult): Promise<boolean> {
    const { store } = ctx;
    const b = run.row;
    try {
      if (b.phase !== "spawning" || b.attempt !== r.attempt || b.host !== r.host) {
        // A stale or duplicate result: give the build back as it was.
        if (b.command_sent && b.sent_at) await giveBackUntilTimeout(ctx, run);
        else await store.retryLater(b, 0);
        return true;
      }
      const started = b.sent_at ? new Date(b.sent_at) : new Date();
      if (r.success) {
        await store.write(run, {
          build: { phase: "done" },
          server: {
            vm_state: "active",
            task_state: "",
            power_state: r.powerState || 1,
            launched_at: new Date(),
          },
          event: stepEvent("compute_build_and_run_instance", started, true, r.host),
          release: true,
        });
        announce(ctx, b, "active", "");
        return true;
      }
      await store.write(run, {
        event: stepEvent("compute_build_and_run_instance", started, false, r.host, r.error),
      });
      await attemptFailed(ctx, run, r.host, r.error || "spawn failed", r.retryable);
    } catch (err) {
      if (err instanceof StaleLease) return false;
      ctx.logger.warn({ err, serverId: r.serverId }, "handling build result failed; redelivered later");
      await store.retryLater(b, 0);
      return false;
    }
    // The result is recorded; what follows (re-bind, resend, cleanup) runs from the row.
    await store.retryLater(b, 0);
    return true;
  }

  /**
   * The common result, a success for the attempt in flight on that host for a build nobody
   * holds, recorded in one statement (BuildStore.succeed). False: nothing was written, the
   * general path decides.
   */
  private async succeeded(r: BuildResult): Promise<boolean> {
    const project = await this.ctx.store.succeed(r);
    if (project === undefined) return false;
    announce(this.ctx, { server_id: r.serverId, project_id: project, host: r.host }, "active", "");
    return true;
  }
}
