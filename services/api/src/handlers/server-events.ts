// GET /v2.1/stratus/server-events (a Stratus extension): the servers' state changes as
// Server-Sent Events, the REST form of ServerWatchService (watch/server-events.ts). Query:
// server_id (one server), all_projects (admin). Resume: the Last-Event-ID header (what an
// EventSource sends on its own when it reconnects) or ?after=, each the id of the last event
// received. Events: `ready` first (the watch is in place; its id is where it starts), then one
// `server` event per change, its data the change as JSON; a comment line every 15 s keeps idle
// connections open through proxies.
import type { ServerResponse } from "node:http";
import type { ServerStateChanged } from "@stratus/contracts/events/v1";
import type { ApiDeps } from "../deps.js";
import type { RestRequest, Router } from "../http/router.js";
import type { ServerEvent } from "../watch/server-events.js";
import { watchScope } from "../watch/server-events.js";
import { invalid, queryParam } from "./common.js";

const KEEP_ALIVE_MS = 15_000;

/** The cursor to resume after: Last-Event-ID, else ?after=, else 0 (from now). */
function resumeCursor(req: RestRequest): bigint {
  const header = req.headers["last-event-id"];
  const raw = (Array.isArray(header) ? header[0] : header) ?? queryParam(req, "after");
  if (raw === undefined || raw === "") return 0n;
  if (!/^\d{1,19}$/.test(raw))
    throw invalid(`Invalid event id ${JSON.stringify(raw.slice(0, 40))}: not a cursor`);
  return BigInt(raw);
}

function allProjects(req: RestRequest): boolean {
  const v = queryParam(req, "all_projects");
  if (v === undefined) return false;
  if (["1", "true", "True", "yes"].includes(v)) return true;
  if (["0", "false", "False", "no"].includes(v)) return false;
  throw invalid(`Invalid input for query parameters all_projects. Value: ${v}.`);
}

/** A change as the event's data: Nova's names (snake case), the time in ISO 8601. */
export function changeJson(c: ServerStateChanged) {
  return {
    server_id: c.serverId,
    project_id: c.projectId,
    status: c.status,
    vm_state: c.vmState,
    task_state: c.taskState || null,
    host: c.host || null,
    message: c.message || null,
    at: c.at ? new Date(Number(c.at.seconds) * 1000 + Math.floor(c.at.nanos / 1e6)).toISOString() : null,
  };
}

function sse(e: ServerEvent): string {
  const data = e.change ? changeJson(e.change) : { cursor: String(e.cursor) };
  return `id: ${e.cursor}\nevent: ${e.change ? "server" : "ready"}\ndata: ${JSON.stringify(data)}\n\n`;
}

export function serverEventRoutes(router: Router, deps: ApiDeps): void {
  router.add("GET", "/stratus/server-events", async (req) => {
    const { serverEvents } = deps;
    if (!serverEvents) throw invalid("server events are not served here");
    const scope = watchScope(req.caller, {
      serverId: queryParam(req, "server_id") ?? "",
      allProjects: allProjects(req),
    });
    const after = resumeCursor(req);
    const stop = new AbortController();
    const events = serverEvents.watch(scope, after, stop.signal);
    // The watch is opened before the answer: a refused cursor is a fault body, not a 200.
    let first: IteratorResult<ServerEvent>;
    try {
      first = await events.next();
    } catch (err) {
      stop.abort();
      throw err;
    }
    return {
      status: 200,
      headers: {
        "content-type": "text/event-stream; charset=utf-8",
        "cache-control": "no-cache",
        "x-accel-buffering": "no",
      },
      stream: async (res: ServerResponse) => {
        res.on("close", () => stop.abort());
        if (res.destroyed) stop.abort();
        const keepAlive = setInterval(() => res.write(": keep-alive\n\n"), KEEP_ALIVE_MS);
        try {
          if (!first.done) res.write(sse(first.value));
          for await (const e of { [Symbol.asyncIterator]: () => events }) {
            if (!res.write(sse(e))) {
              await new Promise<void>((resolve) => {
                res.once("drain", resolve);
                res.once("close", resolve);
              });
            }
            if (stop.signal.aborted) break;
          }
        } catch (err) {
          deps.logger.warn({ err, request_id: req.caller.requestId }, "server events stream ended");
        } finally {
          clearInterval(keepAlive);
          stop.abort();
          await events.return(undefined);
          res.end();
        }
      },
    };
  });
}
