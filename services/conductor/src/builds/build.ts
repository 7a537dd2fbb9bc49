// A build as its steps see it: the server_builds row (joined with its server), the columns a step
// writes, and the records a write carries besides them (an instance-action event, a fault).
import { type RequestContext, systemContext, userContext } from "@stratus/runtime";
import type { FlavorRecord } from "../compute/flavors.js";
import type { NewServersRequest, RequestedNetwork } from "../compute/server-acceptance.js";
import type { ServerAddressRecord, ServerRecord } from "../compute/servers.js";
import type { SelectionJson } from "./selection-json.js";

export interface PortSlot {
  slot: number;
  portId: string;
  networkId: string;
  /** Made by the conductor (deleted on failure) rather than brought by the user (unbound, kept). */
  created: boolean;
  routed: boolean;
  segmentIds: string[];
  /** A routed port that already holds an address: the host must be on this segment. */
  heldSegment?: string;
}

export type Phase = "allocating" | "scheduling" | "binding" | "spawning" | "cleanup" | "deleting" | "done";

/** The columns of server_builds a step writes. */
export interface BuildColumns {
  phase: Phase;
  requested: RequestedNetwork[];
  ports: PortSlot[];
  attempt: number;
  selected: SelectionJson | null;
  alternates: SelectionJson[];
  failed_hosts: string[];
  command_sent: boolean;
  sent_at: Date | null;
  fault_code: number;
  fault_message: string;
  fault_details: string;
  end_state: string;
}

/** The columns of servers a step writes. */
export interface ServerColumns {
  host: string;
  node: string;
  task_state: string;
  vm_state: string;
  power_state: number;
  addresses: ServerAddressRecord[];
  launched_at: Date;
  terminated_at: Date;
  deleted: boolean;
  deleted_at: Date;
}

export interface BuildRow extends BuildColumns, Record<string, unknown> {
  server_id: string;
  network_mode: "list" | "auto" | "none";
  max_attempts: number;
  request_id: string;
  generation: string;
  /** The user its steps act for (the accepting call's); roles null: the conductor acts as itself. */
  caller_user_id: string;
  caller_project_id: string;
  caller_roles: string[] | null;
  // joined from servers
  project_id: string;
  user_id: string;
  name: string;
  flavor: FlavorRecord;
  image_ref: string;
  metadata: Record<string, string>;
  host: string;
  created_at: Date;
}

/** One finished step of the build's instance action (Nova's instance action events). */
export interface StepEvent {
  event: string;
  startedAt: Date;
  /** When the step ended (default: the time of the write). */
  finishedAt?: Date;
  ok: boolean;
  host?: string;
  traceback?: string;
}

export function stepEvent(event: string, startedAt: Date, ok: boolean, host = "", traceback = ""): StepEvent {
  return { event, startedAt, ok, host, traceback };
}

export interface Fault {
  code: number;
  message: string;
  details: string;
  host: string;
}

/** Our lease on a build row was taken over: stop quietly, the new holder carries on. */
export class StaleLease extends Error {}

/** A lease new builds start with (Builder.newLease). */
export interface NewLease {
  owner: string;
  leaseMs: number;
  takenAt: number;
}

/** What CreateServers asked of a build it created (Builder.kickCreated). */
export type NewBuild = Pick<
  NewServersRequest,
  "networkMode" | "networks" | "maxAttempts" | "requestId" | "caller"
>;

/** The row CreateServers' statement wrote for a new build leased to this replica (generation 1). */
export function createdRow(server: ServerRecord, build: NewBuild): BuildRow {
  return {
    server_id: server.id,
    phase: "allocating",
    network_mode: build.networkMode,
    requested: build.networks,
    ports: [],
    attempt: 0,
    max_attempts: build.maxAttempts,
    selected: null,
    alternates: [],
    failed_hosts: [],
    command_sent: false,
    sent_at: null,
    fault_code: 0,
    fault_message: "",
    fault_details: "",
    end_state: "",
    request_id: build.requestId,
    generation: "1",
    caller_user_id: build.caller?.userId ?? "",
    caller_project_id: build.caller?.projectId ?? "",
    caller_roles: build.caller ? [...build.caller.roles] : null,
    project_id: server.projectId,
    user_id: server.userId,
    name: server.name,
    flavor: server.flavor,
    image_ref: server.imageRef,
    metadata: server.metadata,
    host: server.host,
    created_at: server.createdAt,
  };
}

/**
 * The context a build's steps run in, under the request id of the call that asked for it: the
 * conductor acting for the build's user (its peers see that user's project and roles, and the
 * network-adapter applies its visibility), or the conductor itself when a service asked.
 */
export function buildContext(
  b: Pick<BuildRow, "request_id" | "caller_user_id" | "caller_project_id" | "caller_roles">,
): RequestContext {
  const requestId = b.request_id || undefined;
  if (!b.caller_roles) return systemContext(requestId);
  return userContext({
    userId: b.caller_user_id,
    projectId: b.caller_project_id,
    roles: b.caller_roles,
    ...(requestId ? { requestId } : {}),
  });
}

/** A compute agent's BuildResult. */
export interface BuildResult {
  serverId: string;
  host: string;
  attempt: number;
  success: boolean;
  error: string;
  retryable: boolean;
  powerState: number;
}

/** A BuildResult that reports a success (recorded in one statement, BuildStore.succeed). */
export type Success = Pick<BuildResult, "serverId" | "host" | "attempt" | "powerState">;
