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
  identityRevoked: "stratus.identity.revoked",
  auditFinding: "stratus.audit.finding",
} as const;

/** The JetStream streams of the mesh; each one's owner (nats-permissions.ts) ensures it at start. */
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

/** The subject prefix of a role's reply inboxes: each role may read its own replies only. */
export function inboxPrefix(role: NatsRole): string {
  return `_INBOX.${role}`;
}
