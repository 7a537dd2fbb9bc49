// The build flow as a state machine over server_builds.phase (docs/conductor.md):
//   allocating → scheduling → binding → spawning → done        (success)
//   any step → cleanup → done                                   (failure: ERROR + fault)
//   deleting → done                                             (DeleteServer)
// A run advances the build it holds under its lease from the phase its row shows until the build
// waits on a compute agent, finishes, or the lease is lost.
import { inSpan, SpanKind, StratusError } from "@stratus/runtime";
import { allocate } from "./allocate.js";
import { bindAndSend } from "./bind-and-send.js";
import { StaleLease } from "./build.js";
import type { BuildContext } from "./build-context.js";
import type { BuildRun } from "./build-run.js";
import { cleanup } from "./cleanup.js";
import { attemptFailed, fail, stepRefused } from "./fail.js";
import { observeStep, type StepOutcome } from "./metrics.js";
import { schedule } from "./schedule.js";

/** Runs the build's steps; a step that cannot go on now gives the build back for a later run. */
export async function runSteps(ctx: BuildContext, run: BuildRun): Promise<void> {
  try {
    // One span per run: the RPCs and the build command its steps send continue its trace.
    await inSpan("build run", SpanKind.INTERNAL, undefined, { "stratus.server_id": run.row.server_id }, () =>
      advance(ctx, run),
    );
  } catch (err) {
    if (err instanceof StaleLease) {
      ctx.logger.info(
        { serverId: run.row.server_id, reason: err.message },
        "build run stopped: its lease is gone or running out",
      );
      return;
    }
    // A peer is down or something unexpected: a sweep retries shortly.
    ctx.logger.warn(
      { err, serverId: run.row.server_id, phase: run.row.phase },
      "build step failed; will retry",
    );
    await ctx.store.retryLater(run.row);
  }
}

async function advance(ctx: BuildContext, run: BuildRun): Promise<void> {
  const b = run.row;
  for (;;) {
    if (
      ["allocating", "scheduling", "binding"].includes(b.phase) &&
      Date.now() - new Date(b.created_at).getTime() > ctx.buildDeadlineMs
    ) {
      await fail(ctx, run, 500, `Build of instance ${b.server_id} timed out in ${b.phase}.`);
      continue;
    }
    const step = b.phase;
    const startedAt = performance.now();
    let outcome: StepOutcome = "ok";
    try {
      switch (b.phase) {
        case "allocating":
          await allocate(ctx, run);
          break;
        case "scheduling":
          await schedule(ctx, run);
          break;
        case "binding":
          // Binds and sends the build command, then gives the lease up: the result takes over.
          await bindAndSend(ctx, run);
          return;
        case "spawning":
          if (!b.command_sent) {
            await bindAndSend(ctx, run);
            return;
          }
          if (b.sent_at && Date.now() - new Date(b.sent_at).getTime() < ctx.buildTimeoutMs) {
            // Woken early (start-up sweep): the result handler or the timeout takes it from here.
            await giveBackUntilTimeout(ctx, run);
            return;
          }
          await attemptFailed(
            ctx,
            run,
            b.host,
            `Build of instance ${b.server_id} on ${b.host} timed out.`,
            true,
          );
          break;
        case "cleanup":
        case "deleting":
          await cleanup(ctx, run);
          return;
        case "done":
          return;
      }
    } catch (err) {
      outcome = err instanceof StaleLease ? "taken" : "retry";
      if (err instanceof StaleLease || !(err instanceof StratusError)) throw err;
      if (err.kind === "unavailable" || err.kind === "internal") throw err;
      outcome = "refused";
      await stepRefused(ctx, run, err);
    } finally {
      if (step !== "done") observeStep(step, outcome, startedAt);
    }
  }
}

/** Gives a spawning build's lease up until its build timeout, changing nothing else. */
export async function giveBackUntilTimeout(ctx: BuildContext, run: BuildRun): Promise<void> {
  const sentAt = new Date(run.row.sent_at!).getTime();
  await ctx.store.write(run, { release: true, leaseUntil: new Date(sentAt + ctx.buildTimeoutMs) });
}
