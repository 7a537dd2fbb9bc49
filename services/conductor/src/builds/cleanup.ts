// The last step of a failed or deleted build: the DeleteCommand to its host (delete only), its
// claims released, the ports the conductor made deleted and the user's unbound (kept); then the
// server row (ERROR with its fault, or DELETED) in the same write.
import { isStratusError } from "@stratus/runtime";
import { stepEvent } from "./build.js";
import { announce, type BuildContext } from "./build-context.js";
import type { BuildRun } from "./build-run.js";
import { hostOf, portsOfDevice } from "./unrecorded-outcome.js";

export async function cleanup(ctx: BuildContext, run: BuildRun): Promise<void> {
  const b = run.row;
  const started = new Date();
  const deleting = b.phase === "deleting";
  const host = deleting ? await hostOf(ctx.destinations, b) : undefined;
  if (host) await ctx.commands.delete(b.server_id, host);
  await ctx.destinations.release(b.server_id);
  if (b.ports.length || b.network_mode !== "none") {
    const { made, brought } = await portsOfDevice(ctx.ports, b);
    for (const id of made) await ignoreNotFound(ctx.ports.delete(id));
    for (const id of brought) {
      if (!made.has(id)) await ignoreNotFound(ctx.ports.unbind(id));
    }
  }
  const now = new Date();
  await ctx.store.write(run, {
    build: { phase: "done" },
    server: deleting
      ? {
          vm_state: "deleted",
          task_state: "",
          power_state: 0,
          deleted: true,
          deleted_at: now,
          terminated_at: now,
        }
      : { vm_state: "error", task_state: "", power_state: 0, addresses: [] },
    event: stepEvent(
      deleting ? "conductor_delete_instance" : "conductor_cleanup_build",
      started,
      true,
      b.host,
    ),
    fault:
      !deleting && b.fault_message
        ? { code: b.fault_code || 500, message: b.fault_message, details: b.fault_details, host: b.host }
        : undefined,
    release: true,
  });
  announce(ctx, b, deleting ? "deleted" : "error", "", b.fault_message, deleting);
}

async function ignoreNotFound(p: Promise<unknown>): Promise<void> {
  try {
    await p;
  } catch (err) {
    if (!isStratusError(err, "not_found")) throw err;
  }
}
