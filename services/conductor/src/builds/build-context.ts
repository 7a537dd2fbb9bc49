// What a build step works with: the build store, the peers, and the build flow's time limits.
import type { Logger } from "@stratus/runtime";
import type { BuildRow } from "./build.js";
import type { BuildRun } from "./build-run.js";
import type { BuildStore } from "./build-store.js";
import { countAnnounced } from "./metrics.js";
import type { Commands, Destinations, Ports } from "./peers.js";

export interface BuildContext {
  store: BuildStore;
  /** Keeps the leases of runs in progress; their peer calls check the lease first. */
  leases: Leases;
  ports: Ports;
  destinations: Destinations;
  commands: Commands;
  logger: Logger;
  /** A sent build with no result after this long counts as a failed attempt. */
  buildTimeoutMs: number;
  /** A build still not spawning after this long fails (a peer that never comes back). */
  buildDeadlineMs: number;
}

/** Keeps the leases of runs in progress (lease-keeper.ts). */
export interface Leases {
  /**
   * Runs `body` as the build's user (buildContext) with `run`'s lease kept, given peers that
   * check the lease before each call.
   */
  hold<T>(ctx: BuildContext, run: BuildRun, body: (ctx: BuildContext) => Promise<T>): Promise<T>;
  stop(): void;
}

/** stratus.server.state for the build's server. */
export function announce(
  ctx: BuildContext,
  b: Pick<BuildRow, "server_id" | "project_id" | "host">,
  vmState: string,
  taskState: string,
  message = "",
  deleted = false,
): void {
  countAnnounced(vmState, taskState);
  ctx.commands.announce({
    serverId: b.server_id,
    projectId: b.project_id,
    host: b.host,
    vmState,
    taskState,
    message,
    deleted,
  });
}
