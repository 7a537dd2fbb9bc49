// NATS: a connection that keeps reconnecting, authenticated with the role's nkey, typed
// publish/subscribe of protobuf events with the request id in headers, and JetStream streams
// (created idempotently by their owner) for what must not be lost: build/delete commands and their
// results. Who may publish and subscribe what: nats-permissions.ts.
import { readFileSync } from "node:fs";
import {
  create,
  type DescMessage,
  fromBinary,
  type MessageInitShape,
  type MessageShape,
  toBinary,
} from "@bufbuild/protobuf";
import {
  AckPolicy,
  type ConnectionOptions,
  type ConsumerInfo,
  connect,
  DeliverPolicy,
  ErrorCode,
  type JetStreamClient,
  type JetStreamManager,
  type JsMsg,
  type Msg,
  type MsgHdrs,
  type NatsConnection,
  NatsError,
  headers as natsHeaders,
  nkeyAuthenticator,
  RetentionPolicy,
  StorageType,
  type Subscription,
} from "nats";
import { Gauge } from "prom-client";
import {
  currentContext,
  type RequestContext,
  readRequestId,
  runWithContext,
  systemContext,
  writeRequestId,
} from "./context.js";
import type { Logger } from "./log.js";
import { metricsRegistry, readWithin } from "./metrics.js";
import {
  assertDeclared,
  inboxPrefix,
  instancesOf,
  type NatsRole,
  type StreamFamily,
  type StreamInstance,
} from "./nats-subjects.js";
import { inSpan, SpanKind, tracingEnabled, writeTraceContext } from "./tracing.js";

/**
 * How a role connects: its reply inboxes under its own prefix and, given its nkey seed, the
 * challenge signed with it (the seed never leaves the process). Without a seed the connection is
 * anonymous, which only an open NATS accepts.
 */
export function natsConnectionOptions(role: NatsRole, seed?: Uint8Array): Partial<ConnectionOptions> {
  return { inboxPrefix: inboxPrefix(role), ...(seed ? { authenticator: nkeyAuthenticator(seed) } : {}) };
}

/** Reads an nkey user seed file (`SU…`, as `nk -gen user` writes it); throws saying what is wrong. */
export function readNkeySeedFile(path: string): Uint8Array {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    throw new Error(`cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
  }
  const seed = text.split("\n").find((line) => line.trim().startsWith("SU"));
  if (!seed) throw new Error(`${path} holds no nkey user seed (a line starting with SU)`);
  return new TextEncoder().encode(seed.trim());
}

export async function connectNats(options: {
  url: string;
  name: string;
  role: NatsRole;
  /** The role's nkey seed; unset: anonymous (refused by a NATS configured by Stratus). */
  seed?: Uint8Array;
  logger: Logger;
}): Promise<NatsConnection> {
  const nc = await connect({
    servers: options.url.split(","),
    name: options.name,
    ...natsConnectionOptions(options.role, options.seed),
    maxReconnectAttempts: -1,
    reconnectTimeWait: 250,
    waitOnFirstConnect: true,
    pingInterval: 10_000,
    // No stack trace captured up front for every request and JetStream publish (two Error objects
    // each, for the case it times out): nats.js's documented switch for request-heavy clients.
    // Our errors are logged with the request id instead.
    noAsyncTraces: true,
  });
  if (!nc.info?.auth_required) {
    options.logger.warn(
      { nats: options.url },
      "NATS requires no authentication: any client that reaches it can forge commands and events",
    );
  }
  void (async () => {
    for await (const s of nc.status()) {
      if (s.type === "pingTimer") continue;
      if (s.type === "error" && s.permissionContext) {
        // The table in nats-permissions.ts does not allow what this service just tried.
        options.logger.error(
          { nats: s.type, data: String(s.data), denied: s.permissionContext },
          "nats refused an operation of this service's role",
        );
        continue;
      }
      options.logger.info({ nats: s.type, data: String(s.data) }, "nats status");
    }
  })();
  return nc;
}

/**
 * Makes the streams a service owns, or brings an existing one's subjects and limits up to date.
 * `replicas` (NATS_STREAM_REPLICAS) is the copies a new stream keeps on a cluster; an existing
 * stream is never given fewer than it has (an operator, or a replica configured higher, may have
 * raised it), only more. A replica count the servers cannot hold (3 on one server) is refused by
 * NATS, and the service does not start.
 */
export async function ensureStreams(
  nc: NatsConnection,
  streams: readonly StreamFamily[],
  options: { replicas?: number } = {},
): Promise<void> {
  if (streams.length === 0) return;
  const replicas = options.replicas ?? 1;
  const jsm = await untilJetStreamAnswers(() => nc.jetstreamManager());
  // All at once: on a cluster each is a round of the meta leader's, and the 16 command shards one
  // after another made a conductor's start too slow for a harness's wait.
  await Promise.all(
    streams.flatMap((s) =>
      instancesOf(s).map((instance) => untilJetStreamAnswers(() => ensureStream(jsm, s, instance, replicas))),
    ),
  );
}

/** How long a start waits for JetStream to answer (a cluster electing leaders, replicas catching up). */
const JETSTREAM_START_WAIT_MS = 60_000;

/**
 * Runs a JetStream API call until it answers: on a cluster a request can time out or find no
 * responder while the meta leader is elected or busy with other services' streams (every replica
 * of every service ensures its streams at once), which must delay a start, not end it.
 */
async function untilJetStreamAnswers<T>(call: () => Promise<T>): Promise<T> {
  const deadline = Date.now() + JETSTREAM_START_WAIT_MS;
  for (let wait = 100; ; wait = Math.min(wait * 2, 2000)) {
    try {
      return await call();
    } catch (err) {
      const transient =
        err instanceof NatsError &&
        (err.code === ErrorCode.Timeout ||
          err.code === ErrorCode.NoResponders ||
          err.code === ErrorCode.JetStreamNotEnabled ||
          err.api_error?.code === 503);
      if (!transient || Date.now() + wait > deadline) throw err;
      await new Promise((resolve) => setTimeout(resolve, wait));
    }
  }
}

async function ensureStream(
  jsm: JetStreamManager,
  s: StreamFamily,
  instance: StreamInstance,
  replicas: number,
): Promise<void> {
  const config = {
    name: instance.name,
    subjects: [...instance.subjects],
    // A work queue forgets a message once acknowledged; a history keeps each until max_age.
    retention: s.retention === "workqueue" ? RetentionPolicy.Workqueue : RetentionPolicy.Limits,
    storage: StorageType.File,
    max_age: s.maxAgeS * 1e9,
    max_bytes: s.maxBytes ?? -1,
  };
  let existing: number | undefined;
  try {
    existing = (await jsm.streams.info(instance.name)).config.num_replicas;
  } catch (err) {
    if (!isStreamNotFound(err)) throw err;
  }
  if (existing !== undefined) {
    await jsm.streams.update(instance.name, { ...config, num_replicas: Math.max(existing, replicas) });
    return;
  }
  try {
    await jsm.streams.add({ ...config, num_replicas: replicas });
  } catch (err) {
    // Another service created it between our two calls.
    await jsm.streams.info(instance.name).catch(() => {
      throw err;
    });
  }
}

function contextHeaders(): MsgHdrs {
  const h = natsHeaders();
  writeRequestId(h);
  writeTraceContext(h);
  return h;
}

/**
 * The headers of the current context for a core publish, built once per context: a call's events
 * all carry the same ones, and building them (nats.js validates and canonicalises every key) was
 * the largest allocation per port an adapter made. Never mutated once built; JetStream's publish
 * may add its own headers, so publishDurable builds fresh ones.
 */
const sharedHeaders = new WeakMap<RequestContext, MsgHdrs>();
function contextHeadersShared(): MsgHdrs {
  const ctx = currentContext();
  // Traced, each publish carries its own span's context.
  if (!ctx || tracingEnabled()) return contextHeaders();
  let h = sharedHeaders.get(ctx);
  if (!h) {
    h = natsHeaders();
    writeRequestId(h, ctx);
    sharedHeaders.set(ctx, h);
  }
  return h;
}

/**
 * A message is handled by this service acting as itself, under the request id it carries: NATS
 * authenticates the publishing service, not a user, so no identity is taken from a message.
 */
function contextOf(h: MsgHdrs | undefined): RequestContext {
  return systemContext(readRequestId(headerSource(h)));
}

/** A message's headers as the request-id and trace readers take them. */
function headerSource(h: MsgHdrs | undefined): { get(name: string): string | undefined } {
  return { get: (name) => (h?.has(name) ? h.get(name) : undefined) };
}

/** The durable consumers this process reads, for their lag at a scrape. */
const consumersOfProcess = new Map<
  string,
  { stream: string; durable: string; info: () => Promise<{ num_pending: number; num_ack_pending: number }> }
>();

/** How long a scrape waits for one consumer's info before leaving it out. */
const CONSUMER_INFO_TIMEOUT_MS = 1000;

new Gauge({
  name: "stratus_nats_consumer_messages",
  help: "Messages of a durable consumer this process reads: pending (not delivered yet) and unacked (delivered, not acknowledged)",
  labelNames: ["stream", "consumer", "state"] as const,
  registers: [metricsRegistry],
  async collect() {
    this.reset();
    await Promise.all(
      [...consumersOfProcess.values()].map(async (c) => {
        const info = await readWithin(c.info, CONSUMER_INFO_TIMEOUT_MS);
        if (!info) return;
        this.set({ stream: c.stream, consumer: c.durable, state: "pending" }, info.num_pending);
        this.set({ stream: c.stream, consumer: c.durable, state: "unacked" }, info.num_ack_pending);
      }),
    );
  },
});

/** How often a consumer whose stream does not exist yet asks again. */
const STREAM_WAIT_MS = 250;

/** JetStream's "stream not found" (JSStreamNotFoundErr). */
function isStreamNotFound(err: unknown): boolean {
  return err instanceof NatsError && err.api_error?.err_code === 10059;
}

function isConsumerNotFound(err: unknown): boolean {
  return err instanceof NatsError && err.api_error?.err_code === 10014;
}

export interface EventHandlerOptions {
  /** Queue group: one member of the group receives each message. */
  queue?: string;
}

/** A durable consumer being read (EventBus.consumeDurable). */
export interface DurableConsumer {
  readonly name: string;
  /** Stops pulling and waits for the handlers in flight; the consumer stays for the next reader. */
  stop(): Promise<void>;
  /** Stops, then deletes the consumer: what it had not acknowledged stays in the stream. */
  delete(): Promise<void>;
}

/** Deletes a consumer; one already gone is not an error. */
async function deleteConsumer(jsm: JetStreamManager, stream: string, name: string): Promise<void> {
  try {
    await jsm.consumers.delete(stream, name);
  } catch (err) {
    if (!isConsumerNotFound(err)) throw err;
  }
}

/** Typed protobuf events over core NATS and JetStream, carrying the request id. */
export class EventBus {
  private js?: JetStreamClient;
  private readonly subs: Subscription[] = [];
  private readonly consumers: { stop: () => void }[] = [];
  private closed = false;

  constructor(
    readonly nc: NatsConnection,
    private readonly logger: Logger,
  ) {}

  /** Core pub/sub: liveness and progress, lost if nobody listens. */
  publish<D extends DescMessage>(subject: string, schema: D, value: MessageInitShape<D>): void {
    assertDeclared(subject, schema);
    this.nc.publish(subject, toBinary(schema, create(schema, value)), { headers: contextHeadersShared() });
  }

  subscribe<D extends DescMessage>(
    subject: string,
    schema: D,
    handler: (event: MessageShape<D>, msg: Msg) => Promise<void> | void,
    options: EventHandlerOptions = {},
  ): Subscription {
    const sub = this.nc.subscribe(subject, options.queue ? { queue: options.queue } : {});
    this.subs.push(sub);
    void (async () => {
      for await (const msg of sub) {
        await runWithContext(contextOf(msg.headers), async () => {
          try {
            await inSpan(
              `receive ${msg.subject}`,
              SpanKind.CONSUMER,
              headerSource(msg.headers),
              {},
              async () => handler(fromBinary(schema, msg.data), msg),
            );
          } catch (err) {
            this.logger.error({ err, subject: msg.subject }, "event handler failed");
          }
        });
      }
    })();
    return sub;
  }

  private jetstream(): JetStreamClient {
    this.js ??= this.nc.jetstream();
    return this.js;
  }

  /** JetStream publish, acknowledged by the server: survives restarts of either side. */
  async publishDurable<D extends DescMessage>(
    subject: string,
    schema: D,
    value: MessageInitShape<D>,
  ): Promise<void> {
    assertDeclared(subject, schema);
    await this.jetstream().publish(subject, toBinary(schema, create(schema, value)), {
      headers: contextHeaders(),
    });
  }

  /**
   * A durable consumer: each message is handled once by one member; a handler that throws gets
   * the message again after `retryDelayMs` (up to `maxDeliver` times). The consumer is made when
   * missing (and its stream waited for); the answer stops it, or deletes it when its reader
   * leaves for good.
   */
  async consumeDurable<D extends DescMessage>(options: {
    stream: string;
    durable: string;
    filterSubject: string;
    schema: D;
    handler: (event: MessageShape<D>, msg: JsMsg) => Promise<void>;
    maxDeliver?: number;
    retryDelayMs?: number;
    ackWaitMs?: number;
    /** Messages handled at once (default 1: in order). */
    concurrency?: number;
    /** Messages the server may deliver ahead of the handler (default 256). */
    batch?: number;
  }): Promise<DurableConsumer> {
    const jsm = await this.nc.jetstreamManager();
    const config = {
      durable_name: options.durable,
      ack_policy: AckPolicy.Explicit,
      deliver_policy: DeliverPolicy.All,
      filter_subject: options.filterSubject,
      max_deliver: options.maxDeliver ?? 20,
      ack_wait: (options.ackWaitMs ?? 60_000) * 1e6,
    };
    for (let waited = false; ; waited = true) {
      try {
        await untilJetStreamAnswers(() => jsm.consumers.add(options.stream, config));
        break;
      } catch (err) {
        // The stream is made by its owner (nats-permissions.ts), which may start after us.
        if (isStreamNotFound(err) && !this.closed) {
          if (!waited)
            this.logger.info({ stream: options.stream }, "waiting for the stream's owner to make it");
          await new Promise((resolve) => setTimeout(resolve, STREAM_WAIT_MS));
          continue;
        }
        await jsm.consumers.info(options.stream, options.durable).catch(() => {
          throw err;
        });
        break;
      }
    }
    const consumer = await this.jetstream().consumers.get(options.stream, options.durable);
    const messages = await consumer.consume({ max_messages: options.batch ?? 256 });
    const key = `${options.stream}/${options.durable}`;
    consumersOfProcess.set(key, {
      stream: options.stream,
      durable: options.durable,
      info: () => consumer.info(),
    });
    const limit = Math.max(1, options.concurrency ?? 1);
    const inFlight = new Set<Promise<void>>();
    let stopped = false;
    const handle = (m: JsMsg) =>
      runWithContext(contextOf(m.headers), async () => {
        try {
          await inSpan(`process ${m.subject}`, SpanKind.CONSUMER, headerSource(m.headers), {}, () =>
            options.handler(fromBinary(options.schema, m.data), m),
          );
          m.ack();
        } catch (err) {
          this.logger.warn(
            { err, subject: m.subject, redelivery: m.info.redeliveryCount },
            "durable handler failed",
          );
          m.nak(options.retryDelayMs ?? 1000);
        }
      });
    const loop = (async () => {
      for await (const m of messages) {
        // Delivered after stop: left unacknowledged, the server delivers it again (to whoever
        // reads the consumer next) once its ack wait passes, or at once if the consumer goes.
        if (stopped) continue;
        const p = handle(m).finally(() => inFlight.delete(p));
        inFlight.add(p);
        if (inFlight.size >= limit) await Promise.race(inFlight);
      }
    })();
    const stop = async () => {
      stopped = true;
      consumersOfProcess.delete(key);
      messages.stop();
      await loop.catch(() => undefined);
      await Promise.allSettled([...inFlight]);
    };
    const entry = { stop: () => void stop() };
    this.consumers.push(entry);
    return {
      name: options.durable,
      stop,
      delete: async () => {
        await stop();
        this.consumers.splice(this.consumers.indexOf(entry), 1);
        await deleteConsumer(jsm, options.stream, options.durable);
      },
    };
  }

  /**
   * Deletes the consumers of a stream that `keep` refuses (e.g. those of an earlier layout, which
   * on a work-queue stream would keep a new consumer from being made); answers their names, or
   * undefined when there is no such stream.
   */
  async removeConsumers(
    stream: string,
    keep: (info: ConsumerInfo) => boolean,
  ): Promise<string[] | undefined> {
    const jsm = await this.nc.jetstreamManager();
    const removed: string[] = [];
    const found: ConsumerInfo[] = [];
    try {
      for await (const info of jsm.consumers.list(stream)) found.push(info);
    } catch (err) {
      if (isStreamNotFound(err)) return undefined;
      throw err;
    }
    for (const info of found) {
      if (keep(info)) continue;
      await deleteConsumer(jsm, stream, info.name);
      removed.push(info.name);
    }
    return removed;
  }

  /** Whether the stream exists. */
  async hasStream(stream: string): Promise<boolean> {
    const jsm = await this.nc.jetstreamManager({ checkAPI: false });
    try {
      await jsm.streams.info(stream);
      return true;
    } catch (err) {
      if (isStreamNotFound(err)) return false;
      throw err;
    }
  }

  /** Whether the stream has the durable consumer `name` (false too when there is no stream). */
  async hasConsumer(stream: string, name: string): Promise<boolean> {
    const jsm = await this.nc.jetstreamManager({ checkAPI: false });
    try {
      await jsm.consumers.info(stream, name);
      return true;
    } catch (err) {
      if (isConsumerNotFound(err) || isStreamNotFound(err)) return false;
      throw err;
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const c of this.consumers) c.stop();
    for (const s of this.subs) s.unsubscribe();
    await this.nc.drain().catch(() => this.nc.close());
  }
}
