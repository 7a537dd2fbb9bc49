// The names NATS traffic is addressed by: the subjects and JetStream streams of the mesh, and the
// roles that connect to it (each with a credential of its own, nats-permissions.ts).

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

/**
 * A host name as one subject token (and a part of a consumer name): `.` (FQDNs) would split it
 * into several tokens, so that one host's filter could cover another's (`a.>` covers `a.b`).
 * Injective: `_` becomes `__`, `.` becomes `_d`; the host names an agent accepts hold nothing
 * else a subject forbids. `*` passes unchanged, so `computeBuild("*")` is every host's pattern.
 */
export function hostToken(host: string): string {
  return host.replaceAll("_", "__").replaceAll(".", "_d");
}

/** The subject prefix of one host's commands: `stratus.compute.host.<host token>`. */
const hostCommands = (host: string) => `stratus.compute.host.${hostToken(host)}`;

/** Subjects: stratus.<domain>.<event>; a host's commands: stratus.compute.host.<host>.<command>. */
export const Subjects = {
  serverState: "stratus.server.state",
  serversChanged: "stratus.server.changed",
  computeBuild: (host: string) => `${hostCommands(host)}.build`,
  computeDelete: (host: string) => `${hostCommands(host)}.delete`,
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
  identityRevoked: "stratus.identity.revoked",
  auditFinding: "stratus.audit.finding",
} as const;

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
    subjects: ["stratus.compute.host.>"],
    /** What the host's consumer reads: every command of the host. */
    hostFilter: (host: string) => `${hostCommands(host)}.>`,
    /** The host's durable consumer (names allow no `.`: the host token). */
    hostConsumer: (host: string) => `host-${hostToken(host)}`,
  },
  /** What compute hosts report back to the conductor. */
  computeResults: {
    name: "STRATUS_COMPUTE_RESULTS",
    subjects: ["stratus.compute.result", "stratus.compute.deleted"],
  },
} as const;

/** The subject prefix of a role's reply inboxes: each role may read its own replies only. */
export function inboxPrefix(role: NatsRole): string {
  return `_INBOX.${role}`;
}
