// Who may do what on NATS: one row per subject and per stream the runtime declares (nats.ts), from
// which each role's publish/subscribe permissions are derived. The generated nats-server
// configuration (nats-server-config.ts) is made from this table alone, so a new subject or stream
// does not compile until its row says who publishes it and who reads it.
import {
  inboxPrefix,
  instancesOf,
  type NatsRole,
  type ServiceRole,
  type StreamFamily,
  Streams,
  Subjects,
} from "./nats-subjects.js";

interface SubjectRights {
  /** The one role that may publish it: the owner of the resource or the sender of the command. */
  publisher: ServiceRole;
  /** Roles that subscribe to it on core NATS (a stream's consumers read it through the stream). */
  subscribers: readonly ServiceRole[];
}

const SUBJECT_RIGHTS: { readonly [K in keyof typeof Subjects]: SubjectRights } = {
  serverState: { publisher: "conductor", subscribers: [] },
  serversChanged: { publisher: "conductor", subscribers: ["api"] },
  computeBuild: { publisher: "conductor", subscribers: [] },
  computeDelete: { publisher: "conductor", subscribers: [] },
  computeBuildUnsharded: { publisher: "conductor", subscribers: [] },
  computeDeleteUnsharded: { publisher: "conductor", subscribers: [] },
  computeResult: { publisher: "compute-agent", subscribers: [] },
  computeDeleted: { publisher: "compute-agent", subscribers: [] },
  vifPlugged: { publisher: "compute-agent", subscribers: [] },
  heartbeat: { publisher: "compute-agent", subscribers: ["conductor"] },
  portCreated: { publisher: "network-adapter", subscribers: [] },
  portBound: { publisher: "network-adapter", subscribers: [] },
  portUnbound: { publisher: "network-adapter", subscribers: [] },
  portDeleted: { publisher: "network-adapter", subscribers: [] },
  portUpdated: { publisher: "network-adapter", subscribers: [] },
  ipAllocated: { publisher: "network-adapter", subscribers: [] },
  ipReleased: { publisher: "network-adapter", subscribers: [] },
  networkCreated: { publisher: "network-adapter", subscribers: [] },
  networkDeleted: { publisher: "network-adapter", subscribers: [] },
  networkUpdated: { publisher: "network-adapter", subscribers: [] },
  segmentCreated: { publisher: "network-adapter", subscribers: [] },
  segmentUpdated: { publisher: "network-adapter", subscribers: [] },
  segmentDeleted: { publisher: "network-adapter", subscribers: [] },
  subnetCreated: { publisher: "network-adapter", subscribers: [] },
  subnetUpdated: { publisher: "network-adapter", subscribers: [] },
  subnetDeleted: { publisher: "network-adapter", subscribers: [] },
  routerCreated: { publisher: "network-adapter", subscribers: [] },
  routerUpdated: { publisher: "network-adapter", subscribers: [] },
  routerDeleted: { publisher: "network-adapter", subscribers: [] },
  allocationClaimed: { publisher: "scheduler", subscribers: [] },
  allocationReleased: { publisher: "scheduler", subscribers: [] },
  // Schedulers tell each other of placement writes (their host pools).
  placementChanged: { publisher: "scheduler", subscribers: ["scheduler"] },
  // The conductor's reconciler reports what its audit finds (docs/audit.md); operators' tools read it.
  auditFinding: { publisher: "conductor", subscribers: [] },
  // Every service that validates tokens forgets revoked ones; identity replicas hear each other.
  identityRevoked: {
    publisher: "identity",
    subscribers: ["api", "conductor", "scheduler", "network-adapter", "compute-agent", "identity"],
  },
};

interface StreamRights {
  /** The one role that creates and updates the stream (at its start); nobody may delete it. */
  owner: ServiceRole;
  /** Roles with durable consumers on it (create, pull, acknowledge). */
  consumers: readonly ServiceRole[];
  /**
   * Consumers that delete their consumers when they leave, and list the stream's consumers to
   * remove those of an earlier layout. JetStream's API names the stream and the consumer, not the
   * filter (NATS 2.9 carries it in the request body), so a right cannot be narrower than the stream.
   */
  removers?: readonly ServiceRole[];
  /**
   * Roles that read it from a sequence of their choosing with short-lived consumers they make
   * and remove (nats.js's ordered consumers), acknowledging nothing.
   */
  readers?: readonly ServiceRole[];
  /** Roles that look up whether a consumer exists (its info). */
  lookers?: readonly ServiceRole[];
}

/** Both command layouts (the shards, and the unsharded stream of an earlier version) alike. */
const COMMAND_STREAM_RIGHTS: StreamRights = {
  owner: "conductor",
  consumers: ["compute-agent"],
  removers: ["compute-agent"],
  lookers: ["conductor"],
};

const STREAM_RIGHTS: { readonly [K in keyof typeof Streams]: StreamRights } = {
  // The conductor sends the commands and reads the results: both streams exist once it has run,
  // and it looks up which stream a host's agent reads (the shards, or the unsharded stream of an
  // earlier version). Each agent reads its own hosts' consumers; every agent holds the one
  // compute-agent credential, and a consumer's filter is not part of the API subject on NATS 2.9,
  // so the right covers the stream (docs/architecture.md, "One agent per hypervisor").
  computeCommands: COMMAND_STREAM_RIGHTS,
  computeCommandsUnsharded: COMMAND_STREAM_RIGHTS,
  computeResults: { owner: "conductor", consumers: ["conductor"] },
  // The conductor publishes the state changes; the api's watchers read them.
  serverEvents: { owner: "conductor", consumers: [], readers: ["api"] },
};

/** What one role may publish and subscribe, in nats-server's permission terms. */
export interface NatsPermissions {
  publish: { allow: string[] } | { deny: string[] };
  subscribe: { allow: string[] };
}

/** A subject of the table as a permission: a subject made per host covers every host. */
function subjectPattern(subject: (typeof Subjects)[keyof typeof Subjects]): string {
  return typeof subject === "function" ? subject("*") : subject;
}

function rowsOf<K extends string, V>(table: { readonly [key in K]: V }): [K, V][] {
  return Object.entries(table) as [K, V][];
}

/** The JetStream API subjects (nats-server's `$JS.API`) that stream management and consuming use. */
function jetStreamApi(stream: string, rights: StreamRights, role: NatsRole): string[] {
  const api: string[] = [];
  if (rights.owner === role) {
    api.push(
      `$JS.API.STREAM.INFO.${stream}`,
      `$JS.API.STREAM.CREATE.${stream}`,
      `$JS.API.STREAM.UPDATE.${stream}`,
    );
  }
  if (rights.consumers.includes(role as ServiceRole)) {
    api.push(
      // Durable consumers: created (both forms of the create API), looked up, pulled from.
      `$JS.API.CONSUMER.CREATE.${stream}.>`,
      `$JS.API.CONSUMER.DURABLE.CREATE.${stream}.>`,
      `$JS.API.CONSUMER.INFO.${stream}.>`,
      `$JS.API.CONSUMER.MSG.NEXT.${stream}.>`,
      // Acknowledgements (ack, nak with delay) go to the reply subject of each message.
      `$JS.ACK.${stream}.>`,
    );
  }
  if (rights.removers?.includes(role as ServiceRole)) {
    api.push(`$JS.API.CONSUMER.DELETE.${stream}.>`, `$JS.API.CONSUMER.LIST.${stream}`);
  }
  if (rights.lookers?.includes(role as ServiceRole)) api.push(`$JS.API.CONSUMER.INFO.${stream}.>`);
  if (rights.readers?.includes(role as ServiceRole)) {
    api.push(
      // Where the stream starts and ends (a reader's resume point), then its own consumers.
      `$JS.API.STREAM.INFO.${stream}`,
      `$JS.API.CONSUMER.CREATE.${stream}.>`,
      `$JS.API.CONSUMER.INFO.${stream}.>`,
      `$JS.API.CONSUMER.MSG.NEXT.${stream}.>`,
      `$JS.API.CONSUMER.DELETE.${stream}.>`,
    );
  }
  return api;
}

/**
 * The role's permissions: the subjects it publishes, the JetStream API of the streams it owns or
 * consumes (and `$JS.API.INFO`, which a JetStream manager asks first), the subjects it subscribes
 * and its own reply inbox. No role answers requests, so none has `allow_responses`; a role that
 * publishes nothing is denied every subject (an empty allow list would allow all).
 */
export function natsPermissions(role: NatsRole): NatsPermissions {
  const publish: string[] = [];
  const subscribe: string[] = [];
  for (const [name, rights] of rowsOf(SUBJECT_RIGHTS)) {
    if (rights.publisher === role) publish.push(subjectPattern(Subjects[name]));
    if (rights.subscribers.includes(role as ServiceRole)) subscribe.push(subjectPattern(Subjects[name]));
  }
  const jetStream = rowsOf(STREAM_RIGHTS).flatMap(([name, rights]) =>
    instancesOf(Streams[name]).flatMap((instance) => jetStreamApi(instance.name, rights, role)),
  );
  if (jetStream.length > 0) publish.push("$JS.API.INFO", ...new Set(jetStream));
  if (role === "tools") subscribe.push("stratus.>");
  subscribe.push(`${inboxPrefix(role)}.>`);
  return {
    publish: publish.length > 0 ? { allow: publish } : { deny: [">"] },
    subscribe: { allow: subscribe },
  };
}

/** The streams a role creates and keeps up to date at its start (none an earlier version made). */
export function streamsOwnedBy(role: NatsRole): StreamFamily[] {
  return rowsOf(STREAM_RIGHTS)
    .filter(([name, rights]) => rights.owner === role && !("madeByEarlierVersions" in Streams[name]))
    .map(([name]) => Streams[name]);
}
