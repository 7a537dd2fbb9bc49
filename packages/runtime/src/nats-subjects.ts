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
  /** The fields its `{field}` tokens name, in order. */
  fields: string[];
}

const PLACEHOLDER = /^\{([a-z][a-z0-9_]*)\}$/;

function declarationsOf(file: DescFile): DeclaredSubject[] {
  return file.messages.flatMap((message) =>
    getOption(message, subjectOption).map((s) => ({
      name: s.name,
      pattern: s.pattern,
      durable: s.durable,
      message,
      fields: s.pattern
        .split(".")
        .map((token) => PLACEHOLDER.exec(token)?.[1])
        .filter((f): f is string => f !== undefined),
    })),
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
 * A declared subject with one `{field}` token, as the function that fills it. Filled with `*` or
 * `>` (as given, not encoded) it is the pattern a subscriber or a permission uses.
 */
function perToken(name: string): (value: string) => string {
  const { pattern } = declared(name, 1);
  const tokens = pattern.split(".");
  const at = tokens.findIndex((t) => PLACEHOLDER.test(t));
  const before = `${tokens.slice(0, at).join(".")}.`;
  const after = at + 1 < tokens.length ? `.${tokens.slice(at + 1).join(".")}` : "";
  return (value) =>
    `${before}${value === "*" || (value === ">" && after === "") ? value : subjectToken(value)}${after}`;
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
 * Every command of one host, `stratus.compute.host.<host>.>`; of every host with `>`. Read from
 * the two commands' declarations, which must share everything before the host.
 */
function hostCommandsFilter(host: string): string {
  const [build, del] = [declared("computeBuild", 1).pattern, declared("computeDelete", 1).pattern];
  const prefix = build.split("{host}")[0]!;
  if (!prefix || del.split("{host}")[0] !== prefix) {
    throw new Error(`computeBuild (${build}) and computeDelete (${del}) must share their prefix`);
  }
  return host === ">" ? `${prefix}>` : `${prefix}${hostToken(host)}.>`;
}

/** A subject pattern as a test of concrete subjects: `{field}` matches any one token. */
function matcher(pattern: string): RegExp {
  const tokens = pattern
    .split(".")
    .map((t) => (PLACEHOLDER.test(t) ? "[^.*> ]+" : t.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")));
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

/** The JetStream streams of the mesh; each one's owner (nats-permissions.ts) ensures it at start. */
export const Streams = {
  /**
   * Commands to compute hosts, removed once acknowledged. Each host has a durable consumer of its
   * own, made by the agent that runs the host, reading that host's commands (builds and deletes in
   * the order sent) and nothing else: a command reaches the one agent that can run it on its first
   * delivery. NATS 2.9 allows one filter subject per consumer, so an agent of many hosts has as
   * many consumers; on a work-queue stream their filters must not overlap, which the one-token
   * host (hostToken) guarantees.
   */
  computeCommands: {
    name: "STRATUS_COMPUTE_COMMANDS",
    // One subject tree for both commands: NATS 2.9 takes a consumer filter only when it is within
    // one of the stream's subjects, and a host's filter covers its builds and its deletes.
    subjects: [hostCommandsFilter(">")],
    retention: "workqueue",
    maxAgeS: 24 * 3600,
    /** What the host's consumer reads: every command of the host (its builds and deletes). */
    hostFilter: (host: string) => hostCommandsFilter(host),
    /** The host's durable consumer (consumer names allow no `.`: the host as one token). */
    hostConsumer: (host: string) => `host-${hostToken(host)}`,
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
} as const satisfies Record<
  string,
  {
    name: string;
    subjects: readonly string[];
    retention: "workqueue" | "history";
    maxAgeS: number;
    maxBytes?: number;
    hostFilter?: (host: string) => string;
    hostConsumer?: (host: string) => string;
  }
>;

/** The subject prefix of a role's reply inboxes: each role may read its own replies only. */
export function inboxPrefix(role: NatsRole): string {
  return `_INBOX.${role}`;
}
