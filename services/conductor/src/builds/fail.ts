// When a step or an attempt fails: the next alternate (same ports), the scheduler again without the
// failed hosts, or the build fails for good and moves to cleanup (design.md §2.7).
import type { StratusError } from "@stratus/runtime";
import { isStratusError } from "@stratus/runtime";
import { type StepEvent, stepEvent } from "./build.js";
import { announce, type BuildContext } from "./build-context.js";
import type { BuildRun } from "./build-run.js";

/** Records why the build fails and moves it to cleanup (which releases everything). */
export async function fail(
  ctx: BuildContext,
  run: BuildRun,
  code: number,
  message: string,
  details = "",
  also: { event?: StepEvent } = {},
): Promise<void> {
  await ctx.store.write(run, {
    build: {
      phase: "cleanup",
      fault_code: code,
      fault_message: message,
      fault_details: details,
      end_state: "error",
    },
    event: also.event,
  });
}

/** The current attempt failed on `host`: the next alternate (same ports), or fail for good. */
export async function attemptFailed(
  ctx: BuildContext,
  run: BuildRun,
  host: string,
  reason: string,
  retryable: boolean,
): Promise<void> {
  const b = run.row;
  const failed = [...new Set([...b.failed_hosts, host])];
  const started = new Date();
  const alternates = [...b.alternates];
  if (retryable && b.attempt < b.max_attempts) {
    while (alternates.length) {
      const next = alternates.shift()!;
      if (failed.includes(next.host)) continue;
      try {
        await ctx.destinations.claim(b.server_id, b.project_id, b.user_id, next);
      } catch (err) {
        if (isStratusError(err, "unavailable")) throw err;
        ctx.logger.info(
          { serverId: b.server_id, host: next.host, err: String(err) },
          "alternate no longer fits",
        );
        continue;
      }
      await ctx.store.write(run, {
        build: {
          phase: "binding",
          attempt: b.attempt + 1,
          selected: next,
          alternates,
          failed_hosts: failed,
          command_sent: false,
          sent_at: null,
        },
        server: { host: next.host, node: next.host, task_state: "networking" },
        event: stepEvent("conductor_reschedule", started, true, next.host, reason),
      });
      announce(ctx, b, "building", "networking", `rescheduled to ${next.host}: ${reason}`);
      return;
    }
    // No alternate still fits, or none is known (a schedule that went unrecorded, see
    // UnrecordedOutcome): the scheduler is asked again without the failed hosts, as Nova did
    // before alternates; the claim it makes replaces the failed host's.
    await ctx.store.write(run, {
      build: {
        phase: "scheduling",
        selected: null,
        alternates: [],
        failed_hosts: failed,
        command_sent: false,
        sent_at: null,
      },
      server: { task_state: "scheduling" },
      event: stepEvent("conductor_reschedule", started, true, "", reason),
    });
    announce(ctx, b, "building", "scheduling", `rescheduling: ${reason}`);
    return;
  }
  const why = retryable
    ? `Exceeded maximum number of retries. Exceeded max scheduling attempts ${b.max_attempts} for instance ${b.server_id}. Last exception: ${reason}`
    : reason;
  await ctx.store.write(run, { build: { failed_hosts: failed } });
  await fail(ctx, run, 500, why);
}

/** A peer refused a step for a reason that will not go away by retrying: an alternate, or fail. */
export async function stepRefused(ctx: BuildContext, run: BuildRun, err: StratusError): Promise<void> {
  const b = run.row;
  if (b.phase === "binding" && ["ip_exhausted", "conflict", "invalid_input"].includes(err.kind)) {
    // The host cannot take the ports (its segment ran dry, it reaches no segment): an alternate.
    await attemptFailed(ctx, run, b.host, `Binding ports on ${b.host} failed: ${err.message}`, true);
    return;
  }
  const code = err.kind === "no_valid_host" ? 500 : err.httpStatus;
  await fail(ctx, run, code, err.message, err.kind);
}
