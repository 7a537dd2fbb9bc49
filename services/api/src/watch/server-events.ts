// The live progress of servers for users (ServerWatchService and its Server-Sent Events form):
// the conductor's state changes, kept in the STRATUS_SERVER_EVENTS stream on one subject per
// project, read from a stream sequence with an ordered consumer of the caller's subject. The
// stream sequence is the watch's cursor: a watcher that reconnects with the last cursor it saw
// gets every later change of its servers once, in the order they were written.
import { fromBinary } from "@bufbuild/protobuf";
import { type ServerStateChanged, ServerStateChangedSchema } from "@stratus/contracts/events/v1";
import { type Logger, StratusError, Streams, Subjects } from "@stratus/runtime";
import { type ConsumerMessages, type JetStreamManager, type NatsConnection, NatsError } from "nats";

/** What one watch delivers: the servers of a project (every project: undefined), or one server. */
export interface WatchScope {
  projectId: string | undefined;
  serverId: string;
}

/** The caller a watch is for, as the edge authenticated it. */
export interface Watcher {
  projectId: string;
  isAdmin: boolean;
}

/**
 * Which servers `caller` may watch: its project's, every project's for an admin asking for all
 * (anyone else asking is refused), one server of those when `serverId` is given.
 */
export function watchScope(caller: Watcher, ask: { serverId: string; allProjects: boolean }): WatchScope {
  if (ask.allProjects && !caller.isAdmin) {
    throw new StratusError("forbidden", "Policy doesn't allow watching the servers of all projects.");
  }
  if (!ask.allProjects && !caller.projectId) {
    throw new StratusError("forbidden", "Watching servers needs a token scoped to a project.");
  }
  if (ask.serverId.length > 255) throw new StratusError("invalid_input", "server_id is too long");
  return { projectId: ask.allProjects ? undefined : caller.projectId, serverId: ask.serverId };
}

/** One response of a watch: where it is in the stream, and the change (none on the first). */
export interface ServerEvent {
  cursor: bigint;
  change?: ServerStateChanged;
}

const STREAM = Streams.serverEvents.name;

/** JetStream's "stream not found" (JSStreamNotFoundErr). */
function isStreamNotFound(err: unknown): boolean {
  return err instanceof NatsError && err.api_error?.err_code === 10059;
}

export class ServerEvents {
  private jsm?: Promise<JetStreamManager>;
  /** Aborted at shutdown: every watch ends (unavailable: its watcher resumes elsewhere). */
  private readonly closing = new AbortController();

  constructor(
    private readonly nc: NatsConnection,
    private readonly logger: Logger,
  ) {}

  private manager(): Promise<JetStreamManager> {
    this.jsm ??= this.nc.jetstreamManager().catch((err) => {
      this.jsm = undefined;
      throw err;
    });
    return this.jsm;
  }

  /**
   * The changes in `scope` after cursor `after` (0: from now on), until `signal` aborts. The first
   * event has no change: the watch is in place at its cursor. Refuses a cursor the stream no
   * longer holds everything after (gone), and one beyond its end (invalid_input).
   */
  async *watch(scope: WatchScope, after: bigint, callerSignal: AbortSignal): AsyncGenerator<ServerEvent> {
    if (this.closing.signal.aborted) throw new StratusError("unavailable", "the api is shutting down");
    const signal = AbortSignal.any([callerSignal, this.closing.signal]);
    let first: number;
    let last: number;
    try {
      const { state } = await (await this.manager()).streams.info(STREAM);
      first = state.first_seq;
      last = state.last_seq;
    } catch (err) {
      if (isStreamNotFound(err)) throw new StratusError("unavailable", "server events are not kept yet");
      this.logger.warn({ err }, "server events: stream info failed");
      throw new StratusError("unavailable", "server events cannot be read now", { cause: err });
    }
    if (after > BigInt(last)) {
      throw new StratusError("invalid_input", `cursor ${after} is beyond the last server event (${last})`);
    }
    // Everything after `after` must still be kept: the next sequence is the stream's first or later.
    if (after > 0n && after + 1n < BigInt(first)) {
      throw new StratusError(
        "gone",
        `server events after cursor ${after} are no longer kept (the oldest is ${first}): read the servers, then watch from now`,
      );
    }
    const from = after > 0n ? after : BigInt(last);
    yield { cursor: from };
    if (signal.aborted) return;

    const consumer = await this.nc.jetstream().consumers.get(STREAM, {
      filterSubjects: Subjects.serverState(scope.projectId ?? ">"),
      opt_start_seq: Number(from) + 1,
      // Removed by the server this long after its watcher went without a word (a crashed api).
      inactive_threshold: 30_000_000_000,
    });
    let messages: ConsumerMessages | undefined;
    const stop = () => {
      void messages?.close().catch(() => undefined);
    };
    signal.addEventListener("abort", stop, { once: true });
    try {
      messages = await consumer.consume({ max_messages: 256 });
      if (signal.aborted) return;
      for await (const m of messages) {
        const change = fromBinary(ServerStateChangedSchema, m.data);
        if (scope.serverId && change.serverId !== scope.serverId) continue;
        yield { cursor: BigInt(m.seq), change };
      }
    } finally {
      signal.removeEventListener("abort", stop);
      stop();
      await consumer.delete().catch(() => undefined);
    }
    if (this.closing.signal.aborted && !callerSignal.aborted) {
      throw new StratusError("unavailable", "the api is shutting down: resume from the last cursor");
    }
  }

  /** Ends every watch (the api is stopping); later ones are refused. */
  close(): void {
    this.closing.abort();
  }
}
