// ServerWatchService on the api's RPC port: the watch of server-events.ts for the user the RPC
// pipeline authenticated (a reader of a project sees its project's servers; an admin may ask for
// every project's).

import type { MessageInitShape } from "@bufbuild/protobuf";
import type { HandlerContext } from "@connectrpc/connect";
import {
  ServerWatchService,
  type WatchServersRequest,
  type WatchServersResponseSchema,
} from "@stratus/contracts/compute/v1/server-watch";
import { allow, bindService, currentContext, servicePolicy, toConnectError } from "@stratus/runtime";
import { type ServerEvents, type WatchScope, watchScope } from "./server-events.js";

export const serverWatchPolicy = servicePolicy(ServerWatchService, {
  watchServers: allow("reader"),
});

export function serverWatchService(events: ServerEvents) {
  return bindService(ServerWatchService, {
    // Not a generator: the caller's context (the pipeline's principal) is read while the call is
    // made, before the stream is iterated outside it.
    watchServers(req: WatchServersRequest, ctx: HandlerContext) {
      const c = currentContext();
      let scope: WatchScope | undefined;
      let refused: unknown;
      try {
        scope = watchScope(
          { projectId: c?.projectId ?? "", isAdmin: c?.isAdmin ?? false },
          { serverId: req.serverId, allProjects: req.allProjects },
        );
      } catch (err) {
        refused = err;
      }
      return stream(events, scope, refused, req.after, ctx.signal);
    },
  });
}

/** The watch's responses; what it throws leaves as the ConnectError its kind maps to. */
async function* stream(
  events: ServerEvents,
  scope: WatchScope | undefined,
  refused: unknown,
  after: bigint,
  signal: AbortSignal,
): AsyncGenerator<MessageInitShape<typeof WatchServersResponseSchema>> {
  try {
    if (!scope) throw refused;
    for await (const e of events.watch(scope, after, signal)) {
      yield e.change ? { cursor: e.cursor, change: e.change } : { cursor: e.cursor };
    }
  } catch (err) {
    throw toConnectError(err);
  }
}
