// NATS: a connection that keeps reconnecting, typed publish/subscribe of protobuf events with the
// request context in headers, and JetStream streams (created idempotently) for what must not be
// lost: build/delete commands and their results.
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
  connect,
  DeliverPolicy,
  type JetStreamClient,
  type JsMsg,
  type Msg,
  type MsgHdrs,
  type NatsConnection,
  headers as natsHeaders,
  RetentionPolicy,
  StorageType,
  type Subscription,
} from "nats";
import {
  currentContext,
  type RequestContext,
  readContextHeaders,
  runWithContext,
  writeContextHeaders,
} from "./context.js";
import type { Logger } from "./log.js";

/** Subjects: stratus.<domain>.<event>. */
export const Subjects = {
  serverState: "stratus.server.state",
  serversChanged: "stratus.server.changed",
  computeBuild: (host: string) => `stratus.compute.build.${host}`,
  computeDelete: (host: string) => `stratus.compute.delete.${host}`,
  computeResult: "stratus.compute.result",
  computeDeleted: "stratus.compute.deleted",
  vifPlugged: "stratus.compute.vif_plugged",
  heartbeat: "stratus.service.heartbeat",
  portCreated: "stratus.port.created",
  portBound: "stratus.port.bound",
  portUnbound: "stratus.port.unbound",
  portDeleted: "stratus.port.deleted",
  portUpdated: "stratus.port.updated",
  ipAllocated: "stratus.ip.allocated",
  ipReleased: "stratus.ip.released",
  networkCreated: "stratus.network.created",
  networkDeleted: "stratus.network.deleted",
  networkUpdated: "stratus.network.updated",
  segmentCreated: "stratus.segment.created",
  segmentUpdated: "stratus.segment.updated",
  segmentDeleted: "stratus.segment.deleted",
  subnetCreated: "stratus.subnet.created",
  subnetUpdated: "stratus.subnet.updated",
  subnetDeleted: "stratus.subnet.deleted",
  routerCreated: "stratus.router.created",
  routerUpdated: "stratus.router.updated",
  routerDeleted: "stratus.router.deleted",
  allocationClaimed: "stratus.allocation.claimed",
  allocationReleased: "stratus.allocation.released",
  placementChanged: "stratus.placement.changed",
} as const;

/** The JetStream streams of the mesh; every service ensures them at start (idempotent). */
export const Streams = {
  /** Commands to compute hosts: one consumer per host, removed once acknowledged. */
  computeCommands: {
    name: "STRATUS_COMPUTE_COMMANDS",
    subjects: ["stratus.compute.build.>", "stratus.compute.delete.>"],
  },
  /** What compute hosts report back to the conductor. */
  computeResults: {
    name: "STRATUS_COMPUTE_RESULTS",
    subjects: ["stratus.compute.result", "stratus.compute.deleted"],
  },
} as const;

export async function connectNats(options: {
  url: string;
  name: string;
  logger: Logger;
}): Promise<NatsConnection> {
  const nc = await connect({
    servers: options.url.split(","),
    name: options.name,
    maxReconnectAttempts: -1,
    reconnectTimeWait: 250,
    waitOnFirstConnect: true,
    pingInterval: 10_000,
    // No stack trace captured up front for every request and JetStream publish (two Error objects
    // each, for the case it times out): nats.js's documented switch for request-heavy clients.
    // Our errors are logged with the request id instead.
    noAsyncTraces: true,
  });
  void (async () => {
    for await (const s of nc.status()) {
      if (s.type === "pingTimer") continue;
      options.logger.info({ nats: s.type, data: String(s.data) }, "nats status");
    }
  })();
  return nc;
}

export async function ensureStreams(nc: NatsConnection): Promise<void> {
  const jsm = await nc.jetstreamManager();
  for (const s of Object.values(Streams)) {
    const config = {
      name: s.name,
      subjects: [...s.subjects],
      retention: RetentionPolicy.Workqueue,
      storage: StorageType.File,
      max_age: 24 * 3600 * 1e9,
    };
    try {
      await jsm.streams.info(s.name);
      await jsm.streams.update(s.name, config);
    } catch {
      try {
        await jsm.streams.add(config);
      } catch (err) {
        // Another service created it between our two calls.
        await jsm.streams.info(s.name).catch(() => {
          throw err;
        });
      }
    }
  }
}

function contextHeaders(): MsgHdrs {
  const h = natsHeaders();
  writeContextHeaders(h);
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
  if (!ctx) return contextHeaders();
  let h = sharedHeaders.get(ctx);
  if (!h) {
    h = natsHeaders();
    writeContextHeaders(h, ctx);
    sharedHeaders.set(ctx, h);
  }
  return h;
}

function contextOf(h: MsgHdrs | undefined) {
  return readContextHeaders({ get: (name) => (h?.has(name) ? h.get(name) : undefined) });
}

export interface EventHandlerOptions {
  /** Queue group: one member of the group receives each message. */
  queue?: string;
}

/** Typed protobuf events over core NATS and JetStream, carrying the request context. */
export class EventBus {
  private js?: JetStreamClient;
  private readonly subs: Subscription[] = [];
  private readonly consumers: { stop: () => void }[] = [];

  constructor(
    readonly nc: NatsConnection,
    private readonly logger: Logger,
  ) {}

  /** Core pub/sub: liveness and progress, lost if nobody listens. */
  publish<D extends DescMessage>(subject: string, schema: D, value: MessageInitShape<D>): void {
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
            await handler(fromBinary(schema, msg.data), msg);
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
    await this.jetstream().publish(subject, toBinary(schema, create(schema, value)), {
      headers: contextHeaders(),
    });
  }

  /**
   * A durable consumer: each message is handled once by one member; a handler that throws gets
   * the message again after `retryDelayMs` (up to `maxDeliver` times).
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
  }): Promise<void> {
    const jsm = await this.nc.jetstreamManager();
    const config = {
      durable_name: options.durable,
      ack_policy: AckPolicy.Explicit,
      deliver_policy: DeliverPolicy.All,
      filter_subject: options.filterSubject,
      max_deliver: options.maxDeliver ?? 20,
      ack_wait: (options.ackWaitMs ?? 60_000) * 1e6,
    };
    try {
      await jsm.consumers.add(options.stream, config);
    } catch (err) {
      await jsm.consumers.info(options.stream, options.durable).catch(() => {
        throw err;
      });
    }
    const consumer = await this.jetstream().consumers.get(options.stream, options.durable);
    const messages = await consumer.consume({ max_messages: 256 });
    this.consumers.push({ stop: () => messages.stop() });
    const limit = Math.max(1, options.concurrency ?? 1);
    const inFlight = new Set<Promise<void>>();
    const handle = (m: JsMsg) =>
      runWithContext(contextOf(m.headers), async () => {
        try {
          await options.handler(fromBinary(options.schema, m.data), m);
          m.ack();
        } catch (err) {
          this.logger.warn(
            { err, subject: m.subject, redelivery: m.info.redeliveryCount },
            "durable handler failed",
          );
          m.nak(options.retryDelayMs ?? 1000);
        }
      });
    void (async () => {
      for await (const m of messages) {
        const p = handle(m).finally(() => inFlight.delete(p));
        inFlight.add(p);
        if (inFlight.size >= limit) await Promise.race(inFlight);
      }
    })();
  }

  async close(): Promise<void> {
    for (const c of this.consumers) c.stop();
    for (const s of this.subs) s.unsubscribe();
    await this.nc.drain().catch(() => this.nc.close());
  }
}
