// The names NATS traffic is addressed by: the subjects and JetStream streams of the mesh, and the
// roles that connect to it (each with a credential of its own, nats-permissions.ts). The subjects
// are those events.proto declares on its messages (the stratus.events.v1.subject option).
import { type DescFile, type DescMessage, getOption } from "@bufbuild/protobuf";
import { file_stratus_events_v1_events } from "@stratus/contracts/events/v1";
import { subject as subjectOption } from "@stratus/contracts/events/v1/subject";

/** The services of the mesh, each connecting with a credential of its own. */
export const SERVICE_ROLES = [
  "api",
  "conductor",
  "scheduler",
  "network-adapter",
  "compute-agent",
  "identity",
] as const;
export type ServiceRole = (typeof SERVICE_ROLES)[number];

/**
 * `tools`: tests, benchmarks and an operator's debugging session. It observes every event
 * (subscribes `stratus.>`) and publishes nothing; a test that must act as a service (send build
 * commands, answer them) connects with that service's credential instead.
 */
export const NATS_ROLES = [...SERVICE_ROLES, "tools"] as const;
export type NatsRole = (typeof NATS_ROLES)[number];

/** A subject as the contracts declare it (the stratus.events.v1.subject option of its message). */
export interface DeclaredSubject {
  /** The key of Subjects. */
  name: string;
  /** Tokens separated by dots; `{field}` is filled from that field of the message. */
  pattern: string;
  /** On a JetStream stream (stored) rather than core NATS. */
  durable: boolean;
  /** The message it carries. */
  message: DescMessage;
  /** The fields its `{field}` tokens name, in order (`{shard}` is not a field). */
  fields: string[];
  /** How many shards its `{shard}` token spreads the values over (0: no such token). */
  shards: number;
}

const PLACEHOLDER = /^\{([a-z][a-z0-9_]*)\}$/;
/** The token a sharded subject holds its value's shard in (subject.proto, `shards`). */
const SHARD = "{shard}";

function declarationsOf(file: DescFile): DeclaredSubject[] {
  return file.messages.flatMap((message) =>
    getOption(message, subjectOption).map((s) => {
      const tokens = s.pattern.split(".");
      if (s.shards > 0 !== tokens.includes(SHARD) || s.shards > 256) {
        throw new Error(`subject ${s.name} (${s.pattern}): {shard} goes with 1 to 256 shards`);
      }
      return {
        name: s.name,
        pattern: s.pattern,
        durable: s.durable,
        message,
        fields: tokens
          .filter((token) => token !== SHARD)
          .map((token) => PLACEHOLDER.exec(token)?.[1])
          .filter((f): f is string => f !== undefined),
        shards: s.shards,
      };
    }),
  );
}

/** Every subject events.proto declares, by name: the one source of the mesh's subjects. */
export const DECLARED_SUBJECTS: ReadonlyMap<string, DeclaredSubject> = new Map(
  declarationsOf(file_stratus_events_v1_events).map((d) => [d.name, d]),
);

function declared(name: string, fields: number): DeclaredSubject {
  const d = DECLARED_SUBJECTS.get(name);
  if (!d) throw new Error(`events.proto declares no subject named ${name}`);
  if (d.fields.length !== fields) {
    throw new Error(`subject ${name} (${d.pattern}) has ${d.fields.length} {field} tokens, not ${fields}`);
  }
  return d;
}

/**
 * A value as one subject token: A-Z a-z 0-9 _ - as they are, every other byte of its UTF-8
 * percent-encoded (so `.`, `*`, `>` and spaces never split or widen a subject), and the empty
 * value as a lone `%` (no encoded value is that).
 */
export function subjectToken(value: string): string {
  if (value === "") return "%";
  if (/^[A-Za-z0-9_-]+$/.test(value)) return value;
  return Array.from(Buffer.from(value, "utf8"), (byte) => {
    const c = String.fromCharCode(byte);
    return /[A-Za-z0-9_-]/.test(c) ? c : `%${byte.toString(16).toUpperCase().padStart(2, "0")}`;
  }).join("");
}

/** A declared subject without `{field}` tokens. */
function fixed(name: string): string {
  return declared(name, 0).pattern;
}

/**
 * The shard of `value` among `shards` (subject.proto): the FNV-1a 32-bit hash of its UTF-8 bytes
 * modulo `shards`, as two lowercase hexadecimal digits.
 */
export function shardOf(value: string, shards: number): string {
  let hash = 0x811c9dc5;
  for (const byte of Buffer.from(value, "utf8")) hash = Math.imul(hash ^ byte, 0x01000193) >>> 0;
  return (hash % shards).toString(16).padStart(2, "0");
}

/**
 * A declared subject with one `{field}` token (and maybe a `{shard}`), as the function that fills
 * it. Filled with `*` or `>` (as given, not encoded; the shard then `*`) it is the pattern a
 * subscriber or a permission uses.
 */
function perToken(name: string): (value: string) => string {
  const { pattern, shards } = declared(name, 1);
  const tokens = pattern.split(".");
  const last = tokens.length - 1;
  const fill = (token: string, i: number, value: string): string => {
    const wildcard = value === "*" || (value === ">" && i === last);
    if (token === SHARD) return wildcard || value === ">" ? "*" : shardOf(value, shards);
    if (PLACEHOLDER.test(token)) return wildcard ? value : subjectToken(value);
    return token;
  };
  return (value) => tokens.map((token, i) => fill(token, i, value)).join(".");
}

/**
 * The subjects code publishes and subscribes, by the names events.proto gives them (read from
 * the generated descriptors when this module loads: a name here the contracts do not declare,
 * or declare with other tokens, stops every service at start; a declaration with no name here
 * fails nats-subjects.test.ts).
 */
export const Subjects = {
  serverState: perToken("serverState"),
  serversChanged: fixed("serversChanged"),
  computeBuild: perToken("computeBuild"),
  computeDelete: perToken("computeDelete"),
  computeBuildUnsharded: perToken("computeBuildUnsharded"),
  computeDeleteUnsharded: perToken("computeDeleteUnsharded"),
  computeResult: fixed("computeResult"),
  computeDeleted: fixed("computeDeleted"),
  vifPlugged: fixed("vifPlugged"),
  heartbeat: fixed("heartbeat"),
  portCreated: fixed("portCreated"),
  portBound: fixed("portBound"),
  portUnbound: fixed("portUnbound"),
  portDeleted: fixed("portDeleted"),
  portUpdated: fixed("portUpdated"),
  ipAllocated: fixed("ipAllocated"),
  ipReleased: fixed("ipReleased"),
  networkCreated: fixed("networkCreated"),
  networkDeleted: fixed("networkDeleted"),
  networkUpdated: fixed("networkUpdated"),
  segmentCreated: fixed("segmentCreated"),
  segmentUpdated: fixed("segmentUpdated"),
  segmentDeleted: fixed("segmentDeleted"),
  subnetCreated: fixed("subnetCreated"),
  subnetUpdated: fixed("subnetUpdated"),
  subnetDeleted: fixed("subnetDeleted"),
  routerCreated: fixed("routerCreated"),
  routerUpdated: fixed("routerUpdated"),
  routerDeleted: fixed("routerDeleted"),
  allocationClaimed: fixed("allocationClaimed"),
  allocationReleased: fixed("allocationReleased"),
  placementChanged: fixed("placementChanged"),
  identityRevoked: fixed("identityRevoked"),
  auditFinding: fixed("auditFinding"),
} as const;

/**
 * A host name as one subject token and part of a consumer name (subjectToken: `.` and every byte
 * a subject or a consumer name forbids percent-encoded), so that one host's filter never covers
 * another's. `*` passes unchanged: `Subjects.computeBuild("*")` is every host's build pattern.
 */
export function hostToken(host: string): string {
  return host === "*" ? host : subjectToken(host);
}

/**
 * Every command of one host (`….<host>.>`: its builds and its deletes) as a function of the host,
 * from the declarations of a build and a delete subject, which must differ only in a last token
 * after `{host}`.
 */
function hostCommandsFilter(build: string, del: string): (host: string) => string {
  const [b, d] = [declared(build, 1).pattern, declared(del, 1).pattern];
  const head = (subject: string) => subject.slice(0, subject.lastIndexOf("."));
  if (head(b) !== head(d) || !head(b).endsWith(".{host}")) {
    throw new Error(`${build} (${b}) and ${del} (${d}) must differ only in a last token after {host}`);
  }
  const fill = perToken(build);
  return (host) => `${head(fill(host))}.>`;
}

/**
 * A subject pattern as a test of concrete subjects: `{field}` matches any one token, `{shard}`
 * two lowercase hexadecimal digits.
 */
function matcher(pattern: string): RegExp {
  const tokens = pattern
    .split(".")
    .map((t) =>
      t === SHARD
        ? "[0-9a-f]{2}"
        : PLACEHOLDER.test(t)
          ? "[^.*> ]+"
          : t.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"),
    );
  return new RegExp(`^${tokens.join("\\.")}$`);
}

/** Each declaration with its matcher, made once. */
const MATCHERS: readonly { declaration: DeclaredSubject; test: RegExp }[] = [
  ...DECLARED_SUBJECTS.values(),
].map((declaration) => ({ declaration, test: matcher(declaration.pattern) }));

const matchersByMessage = new Map<string, RegExp[]>();
for (const { declaration, test } of MATCHERS) {
  const list = matchersByMessage.get(declaration.message.typeName) ?? [];
  list.push(test);
  matchersByMessage.set(declaration.message.typeName, list);
}

/** The declaration a concrete subject falls under, if any. */
export function declarationOf(subject: string): DeclaredSubject | undefined {
  return MATCHERS.find((m) => m.test.test(subject))?.declaration;
}

/**
 * Throws unless the contracts declare `subject` for `message` (EventBus checks every publish: a
 * message on a subject its contract does not name is a bug that no consumer elsewhere could
 * know of).
 */
export function assertDeclared(subject: string, message: DescMessage): void {
  const matchers = matchersByMessage.get(message.typeName);
  if (matchers?.some((m) => m.test(subject))) return;
  throw new Error(`${message.typeName} is not declared for subject ${subject} (events.proto)`);
}

/** A JetStream stream as it is made: its name and the subjects it stores. */
export interface StreamInstance {
  name: string;
  subjects: readonly string[];
}

const COMMAND_SHARDS = declared("computeBuild", 1).shards;
if (declared("computeDelete", 1).shards !== COMMAND_SHARDS) {
  throw new Error("computeBuild and computeDelete must have as many shards");
}
const commandsOf = hostCommandsFilter("computeBuild", "computeDelete");

/**
 * Every command of a declaration's stream, the host a wildcard (its shard `shard`, if sharded):
 * `stratus.compute.commands.07.>`.
 */
function commandTree(name: string, shard?: string): string {
  const tokens = declared(name, 1).pattern.split(".");
  const head = tokens.slice(0, tokens.indexOf("{host}")).map((t) => (t === SHARD ? shard : t));
  if (head.includes(undefined)) throw new Error(`${name} is sharded: name the shard`);
  return [...head, ">"].join(".");
}
const shardStreamName = (shard: string) => `STRATUS_COMPUTE_COMMANDS_${shard.toUpperCase()}`;
const UNSHARDED_COMMANDS = "STRATUS_COMPUTE_COMMANDS";
/** A host's durable consumer, in either command layout (consumer names allow no `.`: the host as one token). */
const hostConsumer = (host: string) => `host-${hostToken(host)}`;

/** The JetStream streams of the mesh; each one's owner (nats-permissions.ts) ensures it at start. */
export const Streams = {
  /**
   * Commands to compute hosts, removed once acknowledged, in one stream per shard of the hosts
   * (computeBuild's `shards`). Each host has a durable consumer of its own on its shard's stream,
   * made by the agent that runs the host, reading that host's commands (builds and deletes in the
   * order sent) and nothing else: a command reaches the one agent that can run it on its first
   * delivery. NATS 2.9 allows one filter subject per consumer, so an agent of many hosts has as
   * many consumers; on a work-queue stream their filters must not overlap, which the one-token
   * host (hostToken) guarantees. NATS 2.9 wakes every pulling consumer of a stream for each new
   * message: sharding keeps that to a sixteenth of the hosts (docs/performance.md).
   */
  computeCommands: {
    shards: Array.from({ length: COMMAND_SHARDS }, (_, k): StreamInstance => {
      const shard = k.toString(16).padStart(2, "0");
      // A shard's commands under one subject tree: NATS 2.9 takes a consumer filter only when it
      // is within one of the stream's subjects, and a host's filter covers its builds and deletes.
      return { name: shardStreamName(shard), subjects: [commandTree("computeBuild", shard)] };
    }),
    retention: "workqueue",
    maxAgeS: 24 * 3600,
    /** The stream holding the host's commands. */
    streamOf: (host: string) => shardStreamName(shardOf(host, COMMAND_SHARDS)),
    /** What the host's consumer reads: every command of the host (its builds and deletes). */
    hostFilter: commandsOf,
    hostConsumer,
  },
  /**
   * The one command stream of agents older than the shards, with the same per-host consumers.
   * Nothing makes it any more: where an earlier version made it, agents read their hosts'
   * commands from it too, and a conductor sends a host's commands here only while the host's
   * agent reads nothing else (docs/deployment.md, "Upgrading"). Removing it ends both.
   */
  computeCommandsUnsharded: {
    name: UNSHARDED_COMMANDS,
    subjects: [commandTree("computeBuildUnsharded")],
    retention: "workqueue",
    maxAgeS: 24 * 3600,
    streamOf: () => UNSHARDED_COMMANDS,
    hostFilter: hostCommandsFilter("computeBuildUnsharded", "computeDeleteUnsharded"),
    hostConsumer,
    madeByEarlierVersions: true,
  },
  /** What compute hosts report back to the conductor. */
  computeResults: {
    name: "STRATUS_COMPUTE_RESULTS",
    subjects: [Subjects.computeResult, Subjects.computeDeleted],
    retention: "workqueue",
    maxAgeS: 24 * 3600,
  },
  /**
   * Every server's state changes, kept for an hour whoever reads them: the api's watchers
   * (ServerWatch) read them by sequence, so a watcher that reconnects resumes where it was.
   */
  serverEvents: {
    name: "STRATUS_SERVER_EVENTS",
    subjects: [Subjects.serverState(">")],
    retention: "history",
    maxAgeS: 3600,
    // The oldest go first beyond this (a watcher resuming from one of them is told so).
    maxBytes: 256 * 2 ** 20,
  },
} as const satisfies Record<string, StreamFamily>;

/** A stream of the mesh, or a family of them (one per shard), and how each is made. */
export type StreamFamily = StreamSettings &
  ({ name: string; subjects: readonly string[] } | { shards: readonly StreamInstance[] });

interface StreamSettings {
  retention: "workqueue" | "history";
  maxAgeS: number;
  maxBytes?: number;
  /** Made by an earlier version only: read and written where it exists, never created. */
  madeByEarlierVersions?: boolean;
  /** Per-host command streams: the stream, filter and durable consumer of a host. */
  streamOf?: (host: string) => string;
  hostFilter?: (host: string) => string;
  hostConsumer?: (host: string) => string;
}

/** The streams a family is made of: its shards, or itself. */
export function instancesOf(s: StreamFamily): readonly StreamInstance[] {
  return "shards" in s ? s.shards : [{ name: s.name, subjects: s.subjects }];
}

/** The subject prefix of a role's reply inboxes: each role may read its own replies only. */
export function inboxPrefix(role: NatsRole): string {
  return `_INBOX.${role}`;
}
