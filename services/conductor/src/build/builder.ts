// The build flow (design.md §2), as a state machine persisted in server_builds:
//   allocating → scheduling → binding → spawning → done        (success)
//   any step → cleanup → done                                   (failure: ERROR + fault)
//   deleting → done                                             (DeleteServer)
// A worker leases a build row (owner + expiry, generation bumped on every lease); each step writes
// its outcome guarded by that generation, so a second conductor replica, or this one restarted,
// resumes from the last written step and never acts on a stale view. Every step is idempotent
// when re-run: ports are created with the server as device and a per-slot name (adopted on
// resume), a user port is claimed for the same device again, SelectDestinations replaces the
// consumer's claim, BindPort re-binds, a re-sent BuildCommand carries the same attempt.
import { timestampNow } from "@bufbuild/protobuf/wkt";
import type { Client } from "@connectrpc/connect";
import {
  BuildCommandSchema,
  DeleteCommandSchema,
  ServerStateChangedSchema,
} from "@stratus/contracts/events/v1";
import type { NetworkService, Port } from "@stratus/contracts/network/v1";
import type { PlacementService } from "@stratus/contracts/scheduler/v1/placement";
import type { SchedulerService } from "@stratus/contracts/scheduler/v1/scheduler";
import {
  type Database,
  type EventBus,
  isStratusError,
  type Logger,
  runWithContext,
  StratusError,
  Subjects,
  systemContext,
  TurnBatcher,
} from "@stratus/runtime";
import type { ServerChanges } from "../compute/changes.js";
import type { FlavorRecord } from "../compute/flavors.js";
import {
  type NewServersRequest,
  type RequestedNetwork,
  type ServerAddressRecord,
  type ServerRecord,
  statusOf,
} from "../compute/servers.js";
import { AcceptGate, type YieldOptions } from "./accept-gate.js";
import { ScheduleBatcher } from "./schedule-batcher.js";
import { type SelectionJson, selectionFromJson, selectionToJson } from "./selection-json.js";

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

type Phase = "allocating" | "scheduling" | "binding" | "spawning" | "cleanup" | "deleting" | "done";

interface BuildRow extends Record<string, unknown> {
  server_id: string;
  phase: Phase;
  network_mode: "list" | "auto" | "none";
  requested: RequestedNetwork[];
  ports: PortSlot[];
  attempt: number;
  max_attempts: number;
  selected: SelectionJson | null;
  alternates: SelectionJson[];
  failed_hosts: string[];
  command_sent: boolean;
  sent_at: Date | null;
  fault_code: number;
  fault_message: string;
  fault_details: string;
  end_state: string;
  request_id: string;
  generation: string;
  // joined from servers
  project_id: string;
  user_id: string;
  name: string;
  flavor: FlavorRecord;
  image_ref: string;
  metadata: Record<string, string>;
  host: string;
  created_at: Date;
  /**
   * A step's outcome not written yet: it goes with the next write (which then records both
   * steps). Only for an outcome that a run starting again from the last write finds anyway:
   * the ports made for the build are adopted by device and slot name, and the host the first
   * schedule chose is the one its claim is on.
   */
  pending?: { build: Record<string, unknown>; events: StepEvent[]; server?: Record<string, unknown> };
}

interface StepEvent {
  event: string;
  startedAt: Date;
  /** When the step ended (default: the time of the write). */
  finishedAt?: Date;
  ok: boolean;
  host?: string;
  traceback?: string;
}

/** What a step records besides its state: an instance-action event, a fault. */
interface StepRecord {
  event?: StepEvent;
  fault?: { code: number; message: string; details: string; host: string };
}

/** A lease new builds start with (Builder.newLease). */
interface NewLease {
  owner: string;
  leaseMs: number;
  takenAt: number;
}

/** A compute agent's BuildResult that reports a success. */
interface Success {
  serverId: string;
  host: string;
  attempt: number;
  powerState: number;
}

/** What CreateServers asked of a build it created (kickCreated). */
type NewBuild = Pick<NewServersRequest, "networkMode" | "networks" | "maxAttempts" | "requestId">;

/** Our lease on a build row was taken over: stop quietly, the new holder carries on. */
class StaleLease extends Error {}

export interface BuilderOptions {
  db: Database;
  bus: EventBus;
  logger: Logger;
  network: () => Client<typeof NetworkService>;
  scheduler: Client<typeof SchedulerService>;
  /** The scheduler's placement: a resumed build finds the claim an earlier run made. */
  placement: Client<typeof PlacementService>;
  /** This conductor's identity in leases; stable across restarts of the same replica. */
  owner: string;
  leaseMs: number;
  /** A sent build with no result after this long counts as a failed attempt. */
  buildTimeoutMs: number;
  /** A build still not spawning after this long fails (a peer that never comes back). */
  buildDeadlineMs: number;
  concurrency: number;
  /** Builds yield to CreateServers callers (see AcceptGate). */
  yieldTo?: YieldOptions;
  /** Builds with the same request spec scheduled in one SelectDestinations call, at most. */
  scheduleBatch?: number;
  /** SelectDestinations calls in flight per request spec before builds wait to batch. */
  scheduleCalls?: number;
  /** Told of every committed write to servers (stratus.server.changed). */
  changes?: ServerChanges;
}

const DEVICE_OWNER = "compute:nova";
const slotName = (serverId: string, slot: number) => `server-${serverId}-port-${slot}`;

export class Builder {
  private readonly active = new Map<string, Promise<void>>();
  private readonly queue: string[] = [];
  private readonly queued = new Set<string>();
  /** Builds created here leased to us and not run yet (kickCreated). */
  private readonly created = new Map<string, { row: BuildRow; until: number }>();
  private running = 0;
  private stopped = false;
  private readonly gate: AcceptGate;
  private recheck: NodeJS.Timeout | undefined;
  private readonly networkCache = new Map<
    string,
    { at: number; routed: boolean; segmentIds: string[]; name: string }
  >();

  private readonly batcher: ScheduleBatcher;
  private readonly successes = new TurnBatcher((rs: Success[]) => this.writeSuccesses(rs));
  private readonly stepWriters = new Map<string, TurnBatcher<Record<string, unknown>, boolean>>();

  constructor(private readonly o: BuilderOptions) {
    this.gate = new AcceptGate(o.yieldTo);
    this.batcher = new ScheduleBatcher(o.scheduler, o.logger, {
      maxBatch: o.scheduleBatch ?? 1,
      maxCalls: o.scheduleCalls ?? 4,
    });
  }

  // ---- scheduling of work ---------------------------------------------------------------------

  /**
   * The lease CreateServers gives the builds it accepts here (Servers.create's `lease`), taken
   * before the statement that writes it (so `takenAt` is no later than the database's now()).
   */
  newLease(): NewLease {
    return { owner: this.o.owner, leaseMs: this.o.leaseMs, takenAt: Date.now() };
  }

  /**
   * Runs a build this process has just created leased to itself (`newLease`): its first run
   * starts from the row as created instead of taking the lease with a write of its own, if it
   * starts within half the lease. Anything else that wakes the build (`kick`, a delete) makes the
   * run read the row again.
   */
  kickCreated(server: ServerRecord, build: NewBuild, lease: NewLease): void {
    if (this.stopped) return;
    this.created.set(server.id, {
      until: lease.takenAt + lease.leaseMs / 2,
      row: {
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
        project_id: server.projectId,
        user_id: server.userId,
        name: server.name,
        flavor: server.flavor,
        image_ref: server.imageRef,
        metadata: server.metadata,
        host: server.host,
        created_at: server.createdAt,
      },
    });
    this.enqueue(server.id);
  }

  /** Runs (or resumes) the build of a server soon, once per server at a time in this process. */
  kick(serverId: string): void {
    this.created.delete(serverId);
    this.enqueue(serverId);
  }

  private enqueue(serverId: string): void {
    if (this.stopped || this.queued.has(serverId)) return;
    this.queued.add(serverId);
    this.queue.push(serverId);
    this.pump();
  }

  /** Runs a CreateServers call, counted as a caller builds yield to (see `yieldTo`). */
  async accept<T>(call: () => Promise<T>): Promise<T> {
    const leave = this.gate.enter();
    try {
      return await call();
    } finally {
      leave();
    }
  }

  /** Build runs allowed at once now. */
  private limit(): number {
    const { runs, recheckInMs } = this.gate.limit(this.o.concurrency, this.queue.length);
    if (recheckInMs !== undefined && this.queue.length && !this.recheck && !this.stopped) {
      this.recheck = setTimeout(() => {
        this.recheck = undefined;
        this.pump();
      }, recheckInMs + 1);
      this.recheck.unref();
    }
    return runs;
  }

  private pump(): void {
    const limit = this.limit();
    while (this.running < limit && this.queue.length) {
      const id = this.queue.shift()!;
      this.queued.delete(id);
      if (this.active.has(id)) {
        // Runs again after the current run, which may have left work (e.g. a result arrived).
        void this.active.get(id)!.finally(() => this.kick(id));
        continue;
      }
      this.running++;
      const p = runWithContext(systemContext(), () => this.run(id))
        .catch((err) => this.o.logger.error({ err, serverId: id }, "build run failed"))
        .finally(() => {
          this.active.delete(id);
          this.running--;
          this.pump();
        });
      this.active.set(id, p);
    }
  }

  /** Waits for this process's current run of a server, if any. */
  async settle(serverId: string): Promise<void> {
    await this.active.get(serverId)?.catch(() => undefined);
  }

  /** Picks up builds whose lease expired (a dead conductor, a timeout) or that we held before a restart. */
  async sweep(startup = false): Promise<number> {
    if (startup) {
      // Leases this replica held before it restarted: nobody runs them any more.
      await this.o.db.query(
        "UPDATE server_builds SET lease_owner = '', lease_until = now() WHERE lease_owner = $1 AND phase <> 'done' AND NOT command_sent",
        [this.o.owner],
      );
    }
    const rows = await this.o.db.query<{ server_id: string }>(
      `SELECT server_id FROM server_builds
       WHERE phase <> 'done' AND lease_until < now()
       ORDER BY lease_until LIMIT 500`,
    );
    for (const r of rows) this.kick(r.server_id);
    return rows.length;
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.recheck);
  }

  // ---- leases ------------------------------------------------------------------------------------

  private async acquire(serverId: string): Promise<BuildRow | undefined> {
    const rows = await this.o.db.query<BuildRow>(
      `UPDATE server_builds b SET lease_owner = $2, lease_until = now() + ($3 || ' milliseconds')::interval,
         generation = b.generation + 1
       FROM servers s
       WHERE b.server_id = $1 AND s.id = b.server_id AND b.phase <> 'done'
         AND (b.lease_owner = '' OR b.lease_until < now())
       RETURNING b.*, s.project_id, s.user_id, s.name, s.flavor, s.image_ref, s.metadata, s.host, s.created_at`,
      [serverId, this.o.owner, String(this.o.leaseMs)],
    );
    return rows[0];
  }

  /**
   * Writes a step's outcome under our lease (and extends it), in one statement: the server
   * columns in `server`, an instance-action event and a fault are written only when the build row
   * still carries our generation and owner (each is a CTE keyed on the build row it returns).
   * Writes of the same shape (the same columns, events or not, fault or not, lease given up or
   * kept) made in one turn of the event loop go in one statement (`stepStatement`).
   */
  private async persist(
    b: BuildRow,
    step: Partial<Record<string, unknown>>,
    server: Partial<Record<string, unknown>> = {},
    also: StepRecord = {},
    opts: { release?: boolean; leaseUntil?: Date } = {},
  ): Promise<void> {
    const pending = b.pending;
    // What an earlier step left for this write goes first; this step's fields win.
    const build = pending ? { ...pending.build, ...step } : step;
    server = pending?.server ? { ...pending.server, ...server } : server;
    const events = [...(pending?.events ?? []), ...(also.event ? [also.event] : [])];
    const f = also.fault;
    const shape: StepShape = {
      build: Object.keys(build).sort(),
      server: Object.keys(server).sort(),
      events: events.length > 0,
      fault: f !== undefined,
      release: opts.release === true,
    };
    const key = JSON.stringify(shape);
    let writer = this.stepWriters.get(key);
    if (!writer) {
      const sql = stepStatement(shape);
      writer = new TurnBatcher((rows: Record<string, unknown>[]) => this.writeSteps(sql, rows));
      this.stepWriters.set(key, writer);
    }
    const row: Record<string, unknown> = {
      ...Object.fromEntries(Object.entries(build).map(([k, v]) => [`b_${k}`, v])),
      ...Object.fromEntries(Object.entries(server).map(([k, v]) => [`s_${k}`, v])),
      server_id: b.server_id,
      generation: b.generation,
      lease_until: opts.leaseUntil ?? null,
      request_id: b.request_id,
      ok: events.every((e) => e.ok),
      events: events.map((e) => ({
        event: e.event,
        start_time: e.startedAt,
        finish_time: e.finishedAt ?? null,
        result: e.ok ? "Success" : "Error",
        traceback: e.traceback ?? "",
        host: e.host ?? "",
      })),
      ...(f
        ? { fault_code: f.code, fault_message: f.message, fault_details: f.details, fault_host: f.host }
        : {}),
    };
    if (!(await writer.add(row))) throw new StaleLease(`lease on ${b.server_id} lost`);
    b.pending = undefined;
    if (Object.keys(server).length) this.o.changes?.changed(b.project_id);
    Object.assign(b, build);
    if (server.host !== undefined) b.host = server.host as string;
  }

  /** Runs one shape's step writes; true for each whose lease held (its rows were written). */
  private async writeSteps(sql: string, rows: Record<string, unknown>[]): Promise<boolean[]> {
    const written = new Set<Record<string, unknown>>();
    // A server twice in one batch (never expected: one run per build at a time) goes in a
    // statement of its own, so that each write is checked against the row as the last one left it.
    let left = rows;
    while (left.length) {
      const now = new Map<string, Record<string, unknown>>();
      const later: Record<string, unknown>[] = [];
      for (const r of left) {
        if (now.has(r.server_id as string)) later.push(r);
        else now.set(r.server_id as string, r);
      }
      // A generic plan (planned once per connection): the rows come as one JSON array, so a
      // custom plan sees nothing a generic one does not, and planning it cost ~1.5 ms a call.
      const done = await this.o.db.query<{ server_id: string }>(
        sql,
        [JSON.stringify([...now.values()]), this.o.owner, String(this.o.leaseMs)],
        { genericPlan: true },
      );
      for (const d of done) written.add(now.get(d.server_id)!);
      left = later;
    }
    return rows.map((r) => written.has(r));
  }

  private event(event: string, startedAt: Date, ok: boolean, host = "", traceback = ""): StepRecord {
    return { event: { event, startedAt, ok, host, traceback } };
  }

  private announce(
    b: Pick<BuildRow, "server_id" | "project_id" | "host">,
    vmState: string,
    taskState: string,
    message = "",
    deleted = false,
  ): void {
    this.o.bus.publish(Subjects.serverState, ServerStateChangedSchema, {
      serverId: b.server_id,
      projectId: b.project_id,
      vmState,
      taskState,
      status: statusOf({ vmState, deleted }),
      host: b.host,
      at: timestampNow(),
      message,
    });
  }

  // ---- the run loop ------------------------------------------------------------------------------

  private async run(serverId: string): Promise<void> {
    const created = this.created.get(serverId);
    this.created.delete(serverId);
    const b = created && Date.now() < created.until ? created.row : await this.acquire(serverId);
    if (!b) return;
    // Every step of the build runs under the request id of the call that asked for it, so it
    // crosses to the scheduler, the network-adapter and (in the build command) the compute agent.
    if (b.request_id) return runWithContext(systemContext(b.request_id), () => this.step(b, serverId));
    return this.step(b, serverId);
  }

  private async step(b: BuildRow, serverId: string): Promise<void> {
    try {
      await this.advance(b);
    } catch (err) {
      if (err instanceof StaleLease) {
        this.o.logger.info({ serverId }, "build taken over by another worker");
        return;
      }
      // A peer is down or something unexpected: a sweep retries shortly.
      this.o.logger.warn({ err, serverId, phase: b.phase }, "build step failed; will retry");
      await this.retryLater(b);
    }
  }

  private async retryLater(b: BuildRow, ms = 2000): Promise<void> {
    await this.o.db
      .query(
        `UPDATE server_builds SET lease_owner = '', lease_until = now() + ($3 || ' milliseconds')::interval
         WHERE server_id = $1 AND generation = $2 AND lease_owner = $4`,
        [b.server_id, b.generation, String(ms), this.o.owner],
      )
      .catch(() => undefined);
  }

  private async advance(b: BuildRow): Promise<void> {
    for (;;) {
      if (
        ["allocating", "scheduling", "binding"].includes(b.phase) &&
        Date.now() - new Date(b.created_at).getTime() > this.o.buildDeadlineMs
      ) {
        await this.fail(b, 500, `Build of instance ${b.server_id} timed out in ${b.phase}.`);
        continue;
      }
      try {
        switch (b.phase) {
          case "allocating":
            await this.allocate(b);
            break;
          case "scheduling":
            await this.schedule(b);
            break;
          case "binding":
            // Binds and sends the build command, then gives the lease up: the result takes over.
            await this.bind(b);
            return;
          case "spawning":
            if (!b.command_sent) {
              await this.bind(b);
              return;
            }
            if (b.sent_at && Date.now() - new Date(b.sent_at).getTime() < this.o.buildTimeoutMs) {
              // Woken early (start-up sweep): the result handler or the timeout takes it from here.
              await this.persist(b, {}, {}, undefined, {
                release: true,
                leaseUntil: new Date(new Date(b.sent_at).getTime() + this.o.buildTimeoutMs),
              });
              return;
            }
            await this.attemptFailed(
              b,
              b.host,
              `Build of instance ${b.server_id} on ${b.host} timed out.`,
              true,
            );
            break;
          case "cleanup":
          case "deleting":
            await this.cleanup(b);
            return;
          case "done":
            return;
        }
      } catch (err) {
        if (err instanceof StaleLease || !(err instanceof StratusError)) throw err;
        if (err.kind === "unavailable" || err.kind === "internal") throw err;
        await this.stepRefused(b, err);
      }
    }
  }

  /** A peer refused a step for a reason that will not go away by retrying: fail the build. */
  private async stepRefused(b: BuildRow, err: StratusError): Promise<void> {
    if (b.phase === "binding" && ["ip_exhausted", "conflict", "invalid_input"].includes(err.kind)) {
      // The host cannot take the ports (its segment ran dry, it reaches no segment): an alternate.
      await this.attemptFailed(b, b.host, `Binding ports on ${b.host} failed: ${err.message}`, true);
      return;
    }
    const code = err.kind === "no_valid_host" ? 500 : err.httpStatus;
    await this.fail(b, code, err.message, err.kind);
  }

  // ---- steps -------------------------------------------------------------------------------------

  private async networkInfo(networkId: string) {
    const cached = this.networkCache.get(networkId);
    if (cached && Date.now() - cached.at < 5000) return cached;
    const net = (await this.o.network().getNetwork({ id: networkId })).network;
    const info = {
      at: Date.now(),
      routed: net?.routed ?? false,
      segmentIds: (net?.segments ?? []).map((s) => s.id),
      name: net?.name ?? "",
    };
    this.networkCache.set(networkId, info);
    return info;
  }

  private async heldSegment(routed: boolean, port: Port | undefined): Promise<{ heldSegment?: string }> {
    const subnetId = port?.fixedIps[0]?.subnetId;
    if (!routed || !subnetId) return {};
    const subnet = (await this.o.network().getSubnet({ id: subnetId })).subnet;
    return subnet?.segmentId ? { heldSegment: subnet.segmentId } : {};
  }

  private async allocate(b: BuildRow): Promise<void> {
    const started = new Date();
    let requested = b.requested;
    if (b.network_mode === "none") requested = [];
    if (b.network_mode === "auto" && requested.length === 0) {
      const topo = await this.o
        .network()
        .getAutoAllocatedTopology({ projectId: b.project_id, dryRun: false });
      requested = [{ networkId: topo.networkId, portId: "", fixedIp: "", tag: "" }];
    }
    if (requested.length === 0) {
      // Nothing to allocate: straight on to scheduling, whose write records both steps.
      b.phase = "scheduling";
      return;
    }
    const ports = [...b.ports];
    // Ports a previous run made but did not record are found by device and slot name. A build
    // leased for the first time (generation 1) cannot have any, so it skips the lookup.
    let adoptable: Port[] | undefined = Number(b.generation) <= 1 ? [] : undefined;
    for (let slot = 0; slot < requested.length; slot++) {
      if (ports.some((p) => p.slot === slot)) continue;
      const want = requested[slot]!;
      let entry: PortSlot;
      if (want.portId) {
        const port = (
          await this.o.network().claimPort({
            portId: want.portId,
            deviceId: b.server_id,
            deviceOwner: DEVICE_OWNER,
            projectId: b.project_id,
          })
        ).port;
        const info = await this.networkInfo(port?.networkId ?? "");
        entry = {
          slot,
          portId: want.portId,
          networkId: port?.networkId ?? "",
          created: false,
          routed: info.routed,
          segmentIds: info.segmentIds,
          ...(await this.heldSegment(info.routed, port)),
        };
      } else {
        const info = await this.networkInfo(want.networkId);
        adoptable ??= (await this.o.network().listPorts({ deviceId: b.server_id })).ports;
        let port = adoptable.find((p) => p.name === slotName(b.server_id, slot));
        port ??= (
          await this.o.network().createPort({
            networkId: want.networkId,
            projectId: b.project_id,
            name: slotName(b.server_id, slot),
            deviceId: b.server_id,
            deviceOwner: DEVICE_OWNER,
            fixedIps: want.fixedIp ? [{ ipAddress: want.fixedIp, subnetId: "" }] : [],
          })
        ).port;
        entry = {
          slot,
          portId: port?.id ?? "",
          networkId: want.networkId,
          created: true,
          routed: info.routed,
          segmentIds: info.segmentIds,
          // An address asked for pins the host's segment. Any other address a port we made holds
          // came from binding it in an earlier run that died before recording it (the schedule
          // and the bind are written together): the build still claims one from the segment of
          // the host it goes to, and binding there moves the address if that segment differs.
          ...(want.fixedIp ? await this.heldSegment(info.routed, port) : {}),
        };
      }
      ports.push(entry);
    }
    // Recorded with the next step's write (the schedule's, or a failure's): a run that dies
    // before it adopts the ports again by device and slot name (conductor ports) or claims them
    // again for the same device (user ports), and a cleanup finds them by device. The server's
    // task_state is already "scheduling" from its creation.
    b.pending = {
      build: { requested, ports },
      events: [
        { event: "conductor_allocate_networks", startedAt: started, finishedAt: new Date(), ok: true },
      ],
    };
    Object.assign(b, { requested, ports, phase: "scheduling" });
  }

  private async schedule(b: BuildRow): Promise<void> {
    const started = new Date();
    const f = b.flavor;
    const resources: Record<string, bigint> = { VCPU: BigInt(f.vcpus), MEMORY_MB: BigInt(f.ramMb) };
    const disk = f.diskGb + f.ephemeralGb + Math.ceil(f.swapMb / 1024);
    if (disk > 0) resources.DISK_GB = BigInt(disk);
    // A routed port with no address yet needs one from a segment that shares with the host; one
    // that already holds an address pins the host to that address's segment.
    const requiredAggregates = b.ports
      .filter((p) => p.routed && p.heldSegment)
      .map((p) => ({ aggregateUuids: [p.heldSegment!] }));
    // One group per routed network: IPV4_ADDRESS:1 from a segment that shares with the host. A
    // second port on the same network adds no amount: segment providers have max_unit 1 (as in
    // Neutron), so 2 from one segment can never be claimed; its address is taken at bind and an
    // exhausted segment moves the build to an alternate.
    const groups = new Map<
      string,
      { suffix: string; resources: { IPV4_ADDRESS: bigint }; memberOf: { aggregateUuids: string[] }[] }
    >();
    for (const p of b.ports.filter((x) => x.routed && !x.heldSegment && x.segmentIds.length)) {
      const key = [...p.segmentIds].sort().join(",");
      const g = groups.get(key);
      if (!g)
        groups.set(key, {
          suffix: `PORT${p.slot}`,
          resources: { IPV4_ADDRESS: 1n },
          memberOf: [{ aggregateUuids: p.segmentIds }],
        });
    }
    const extraGroups = [...groups.values()];
    // A run that takes over a build (generation above 1) may follow one that scheduled it and
    // sent the build command before it could write either (the two are written together, after
    // the send): the claim that run made names the host the command went to, and the build
    // stays there (the same attempt sent again is answered once; its alternates are not known,
    // so a failure there asks the scheduler again). A claim on a host that failed an attempt is
    // the one a reschedule replaces.
    let selected = Number(b.generation) > 1 ? await this.heldClaim(b.server_id) : undefined;
    if (selected && b.failed_hosts.includes(selected.host)) selected = undefined;
    let alternates: SelectionJson[] = [];
    if (!selected) {
      try {
        const destination = await this.batcher.select({
          instanceUuids: [b.server_id],
          projectId: b.project_id,
          userId: b.user_id,
          resources,
          extraGroups,
          requiredAggregates,
          ignoreHosts: b.failed_hosts,
          maxAlternates: Math.max(0, b.max_attempts - 1),
        });
        selected = destination.selected && selectionToJson(destination.selected);
        alternates = destination.alternates.map(selectionToJson);
      } catch (err) {
        if (isStratusError(err, "no_valid_host")) {
          await this.fail(
            b,
            500,
            err.message,
            "no_valid_host",
            this.event("conductor_schedule_instances", started, false, "", err.message),
          );
          return;
        }
        throw err;
      }
    }
    if (!selected) throw new StratusError("internal", "scheduler returned no destination");
    const scheduled = {
      phase: "binding",
      attempt: b.attempt + 1,
      selected,
      alternates,
      command_sent: false,
    };
    const event = this.event("conductor_schedule_instances", started, true, selected.host).event!;
    b.pending = {
      build: { ...b.pending?.build, ...scheduled },
      events: [...(b.pending?.events ?? []), event],
      server: { host: selected.host, node: selected.host },
    };
    Object.assign(b, scheduled);
    b.host = selected.host;
  }

  /** The compute node a build's consumer holds a claim on, with the whole claim; undefined if none. */
  private async heldClaim(serverId: string): Promise<SelectionJson | undefined> {
    const { allocations } = await this.o.placement.getAllocations({ consumerUuid: serverId });
    const node = allocations.find(
      (a) => a.resources.VCPU !== undefined || a.resources.MEMORY_MB !== undefined,
    );
    if (!node) return undefined;
    const { provider } = await this.o.placement.getResourceProvider({ uuid: node.providerUuid });
    if (!provider) return undefined;
    return selectionToJson({ host: provider.name, computeNodeUuid: node.providerUuid, allocations });
  }

  /**
   * Binds the ports to the selected host (deferred ports get their address now), then sends the
   * durable BuildCommand and records both in one write, with the schedule's outcome when this
   * attempt is the first (see `schedule`). A run that dies in between binds again (same host: a
   * no-op; a first attempt finds its host from its claim) and sends again with the same attempt,
   * which the agent answers once.
   */
  private async bind(b: BuildRow): Promise<void> {
    const started = new Date();
    const host = b.selected?.host ?? b.host;
    const bound = await Promise.all(
      b.ports.map(async (p) => (await this.o.network().bindPort({ portId: p.portId, host })).port),
    );
    // The server's addresses are known once its ports are bound (Nova's network info cache is
    // filled at the same point): recorded with the build command, so the result needs no lookup.
    const addresses = await this.addresses(
      b,
      bound.filter((p): p is Port => p !== undefined),
    );
    await this.send(
      b,
      host,
      b.ports.length ? this.event("conductor_bind_ports", started, true, host) : {},
      b.ports.length ? { addresses } : {},
    );
  }

  private async send(
    b: BuildRow,
    host = b.host,
    record: StepRecord = {},
    server: Partial<Record<string, unknown>> = {},
  ): Promise<void> {
    const f = b.flavor;
    await this.o.bus.publishDurable(Subjects.computeBuild(host), BuildCommandSchema, {
      serverId: b.server_id,
      host,
      attempt: b.attempt,
      portIds: b.ports.map((p) => p.portId),
      vcpus: BigInt(f.vcpus),
      memoryMb: BigInt(f.ramMb),
      diskGb: BigInt(f.diskGb),
      imageRef: b.image_ref,
      metadata: b.metadata,
      name: b.name,
    });
    const now = new Date();
    await this.persist(
      b,
      { phase: "spawning", command_sent: true, sent_at: now },
      b.phase === "spawning" ? server : { ...server, task_state: "spawning" },
      record,
      { release: true, leaseUntil: new Date(now.getTime() + this.o.buildTimeoutMs) },
    );
    this.announce(b, "building", "spawning");
  }

  /** The current attempt failed on `host`: next alternate (same ports), or fail for good. */
  private async attemptFailed(b: BuildRow, host: string, reason: string, retryable: boolean): Promise<void> {
    const failed = [...new Set([...b.failed_hosts, host])];
    const started = new Date();
    const alternates = [...b.alternates];
    if (retryable && b.attempt < b.max_attempts) {
      while (alternates.length) {
        const next = alternates.shift()!;
        if (failed.includes(next.host)) continue;
        try {
          await this.o.scheduler.claimSelection({
            consumerUuid: b.server_id,
            projectId: b.project_id,
            userId: b.user_id,
            selection: selectionFromJson(next),
          });
        } catch (err) {
          if (isStratusError(err, "unavailable")) throw err;
          this.o.logger.info(
            { serverId: b.server_id, host: next.host, err: String(err) },
            "alternate no longer fits",
          );
          continue;
        }
        await this.persist(
          b,
          {
            phase: "binding",
            attempt: b.attempt + 1,
            selected: next,
            alternates,
            failed_hosts: failed,
            command_sent: false,
            sent_at: null,
          },
          { host: next.host, node: next.host, task_state: "networking" },
          this.event("conductor_reschedule", started, true, next.host, reason),
        );
        this.announce(b, "building", "networking", `rescheduled to ${next.host}: ${reason}`);
        return;
      }
    }
    if (retryable && b.attempt < b.max_attempts) {
      // No alternate still fits, or none is known (a build taken over after its first command
      // went out unrecorded, see `schedule`): the scheduler is asked again without the failed
      // hosts, as Nova did before alternates; the claim it makes replaces the failed host's.
      await this.persist(
        b,
        {
          phase: "scheduling",
          selected: null,
          alternates: [],
          failed_hosts: failed,
          command_sent: false,
          sent_at: null,
        },
        { task_state: "scheduling" },
        this.event("conductor_reschedule", started, true, "", reason),
      );
      this.announce(b, "building", "scheduling", `rescheduling: ${reason}`);
      return;
    }
    const why = retryable
      ? `Exceeded maximum number of retries. Exceeded max scheduling attempts ${b.max_attempts} for instance ${b.server_id}. Last exception: ${reason}`
      : reason;
    await this.persist(b, { failed_hosts: failed });
    await this.fail(b, 500, why);
  }

  /** Records why the build fails and moves to cleanup (which releases everything). */
  private async fail(
    b: BuildRow,
    code: number,
    message: string,
    details = "",
    also: StepRecord = {},
  ): Promise<void> {
    await this.persist(
      b,
      {
        phase: "cleanup",
        fault_code: code,
        fault_message: message,
        fault_details: details,
        end_state: "error",
      },
      {},
      also,
    );
  }

  /** Releases claims, deletes the ports we made, unbinds the user's; ends in ERROR or DELETED. */
  private async cleanup(b: BuildRow): Promise<void> {
    const started = new Date();
    const deleting = b.phase === "deleting";
    // A build deleted before its host was written may still have had its command sent (see
    // `schedule`): its claim names the host.
    const host = deleting ? b.host || (await this.heldClaim(b.server_id))?.host : undefined;
    if (host) {
      await this.o.bus.publishDurable(Subjects.computeDelete(host), DeleteCommandSchema, {
        serverId: b.server_id,
        host,
      });
    }
    await this.o.scheduler.releaseClaims({ consumerUuid: b.server_id });
    if (b.ports.length || b.network_mode !== "none") {
      const net = this.o.network();
      const mine = new Set(b.ports.filter((p) => p.created).map((p) => p.portId));
      const theirs = new Set(b.ports.filter((p) => !p.created).map((p) => p.portId));
      // Ports not yet recorded (a conductor died, a delete overtook the build): found by device,
      // ours by slot name, the user's otherwise.
      for (const p of (await net.listPorts({ deviceId: b.server_id })).ports) {
        if (p.name.startsWith(`server-${b.server_id}-port-`)) mine.add(p.id);
        else theirs.add(p.id);
      }
      for (const id of mine) await ignoreNotFound(net.deletePort({ id }));
      for (const id of theirs) {
        if (!mine.has(id)) await ignoreNotFound(net.unbindPort({ portId: id, clearDevice: true }));
      }
    }
    const endState = deleting ? "deleted" : "error";
    await this.persist(
      b,
      { phase: "done" },
      deleting
        ? {
            vm_state: "deleted",
            task_state: "",
            power_state: 0,
            deleted: true,
            deleted_at: new Date(),
            terminated_at: new Date(),
          }
        : { vm_state: "error", task_state: "", power_state: 0, addresses: [] },
      {
        ...this.event(
          deleting ? "conductor_delete_instance" : "conductor_cleanup_build",
          started,
          true,
          b.host,
        ),
        ...(!deleting && b.fault_message
          ? {
              fault: {
                code: b.fault_code || 500,
                message: b.fault_message,
                details: b.fault_details,
                host: b.host,
              },
            }
          : {}),
      },
      { release: true },
    );
    this.announce(b, endState, "", b.fault_message, deleting);
  }

  // ---- compute results and deletes -------------------------------------------------------------

  /**
   * A BuildResult from a compute agent. Returns false when it cannot be handled now (another worker
   * holds the build): the caller redelivers it later.
   */
  async onResult(r: {
    serverId: string;
    host: string;
    attempt: number;
    success: boolean;
    error: string;
    retryable: boolean;
    powerState: number;
  }): Promise<boolean> {
    await this.settle(r.serverId);
    if (r.success && !this.active.has(r.serverId) && (await this.succeeded(r))) return true;
    let b = await this.acquire(r.serverId);
    // A run of ours started meanwhile (a sweep or a second kick): wait for it rather than
    // sending the result back for redelivery.
    for (let i = 0; !b && i < 3 && this.active.has(r.serverId); i++) {
      await this.settle(r.serverId);
      b = await this.acquire(r.serverId);
    }
    if (!b) {
      const rows = await this.o.db.query<{ phase: string; attempt: number }>(
        "SELECT phase, attempt FROM server_builds WHERE server_id = $1",
        [r.serverId],
      );
      // Unknown, finished or superseded: nothing to do. A result for an attempt the row does not
      // show yet (a first attempt is recorded just after its command is sent, by whoever holds
      // the build) is kept for later.
      return !rows[0] || rows[0].phase === "done" || rows[0].attempt > r.attempt;
    }
    const run = (async (): Promise<boolean> => {
      try {
        if (b.phase !== "spawning" || b.attempt !== r.attempt || b.host !== r.host) {
          // A stale or duplicate result: give the build back as it was.
          if (b.command_sent && b.sent_at) {
            await this.persist(b, {}, {}, undefined, {
              release: true,
              leaseUntil: new Date(new Date(b.sent_at).getTime() + this.o.buildTimeoutMs),
            });
          } else await this.retryLater(b, 0);
          return true;
        }
        const started = b.sent_at ? new Date(b.sent_at) : new Date();
        if (r.success) {
          await this.persist(
            b,
            { phase: "done" },
            {
              vm_state: "active",
              task_state: "",
              power_state: r.powerState || 1,
              launched_at: new Date(),
            },
            this.event("compute_build_and_run_instance", started, true, r.host),
            { release: true },
          );
          this.announce(b, "active", "");
          return true;
        }
        await this.persist(
          b,
          {},
          {},
          this.event("compute_build_and_run_instance", started, false, r.host, r.error),
        );
        await this.attemptFailed(b, r.host, r.error || "spawn failed", r.retryable);
      } catch (err) {
        if (err instanceof StaleLease) return false;
        this.o.logger.warn({ err, serverId: r.serverId }, "handling build result failed; redelivered later");
        await this.retryLater(b, 0);
        return false;
      }
      // The result is recorded; what follows (re-bind, resend, cleanup) runs from the row.
      await this.retryLater(b, 0);
      return true;
    })();
    const settled = run.then(() => undefined);
    this.active.set(r.serverId, settled);
    try {
      return await run;
    } finally {
      if (this.active.get(r.serverId) === settled) this.active.delete(r.serverId);
      // Work left (a re-bind on an alternate, a cleanup): run it now rather than at the next sweep.
      if (b.phase !== "done") this.kick(r.serverId);
    }
  }

  /**
   * The common result, a success for the attempt in flight on that host, in one statement: the
   * build row is taken (generation bumped) only when nobody holds it and it is spawning that
   * attempt on that host, and finished with the server ACTIVE and the instance-action event, as
   * the general path (lease, then a step write) does in two. False: nothing was written, the
   * general path decides (a stale or duplicate result, a build someone holds). The successes
   * that arrive in one turn of the event loop are written by one statement (`writeSuccesses`).
   */
  private async succeeded(r: Success): Promise<boolean> {
    const project = await this.successes.add(r);
    if (project === undefined) return false;
    this.o.changes?.changed(project);
    this.announce({ server_id: r.serverId, project_id: project, host: r.host }, "active", "");
    return true;
  }

  /** Each success's project when it was written, else undefined (see `succeeded`). */
  private async writeSuccesses(rs: Success[]): Promise<(string | undefined)[]> {
    // A server twice in one batch (a repeated result): the first goes, the others take the
    // general path.
    const first = new Map<string, Success>();
    for (const r of rs) if (!first.has(r.serverId)) first.set(r.serverId, r);
    const batch = [...first.values()];
    const rows = await this.o.db.query<{ server_id: string; project_id: string }>(
      `WITH r AS (SELECT * FROM unnest($1::uuid[], $2::int[], $3::text[], $4::int[])
           AS r(server_id, attempt, host, power_state)),
       b AS (UPDATE server_builds bb SET phase = 'done', lease_owner = '', lease_until = now(),
           generation = bb.generation + 1, updated_at = now()
         FROM servers s, r
         WHERE bb.server_id = r.server_id AND s.id = r.server_id AND bb.phase = 'spawning'
           AND bb.attempt = r.attempt AND s.host = r.host AND (bb.lease_owner = '' OR bb.lease_until < now())
         RETURNING bb.server_id, bb.request_id, bb.sent_at, s.project_id, r.host, r.power_state),
       s AS (UPDATE servers sv SET vm_state = 'active', task_state = '', power_state = b.power_state,
           launched_at = now(), updated_at = now() FROM b WHERE sv.id = b.server_id),
       a AS (UPDATE instance_actions ia SET updated_at = now() FROM b
         WHERE ia.server_id = b.server_id AND ia.request_id = b.request_id RETURNING ia.id, b.sent_at, b.host),
       e AS (INSERT INTO instance_action_events (action_id, event, start_time, finish_time, result, traceback, host)
         SELECT a.id, 'compute_build_and_run_instance', coalesce(a.sent_at, now()), now(), 'Success', '', a.host FROM a)
       SELECT server_id::text AS server_id, project_id FROM b`,
      [
        batch.map((r) => r.serverId),
        batch.map((r) => r.attempt),
        batch.map((r) => r.host),
        batch.map((r) => r.powerState || 1),
      ],
      { name: "conductor_builds_succeeded", genericPlan: true },
    );
    const written = new Map(rows.map((row) => [row.server_id, row.project_id]));
    return rs.map((r) => (first.get(r.serverId) === r ? written.get(r.serverId) : undefined));
  }

  private async addresses(b: BuildRow, ports: Port[]): Promise<ServerAddressRecord[]> {
    if (!b.ports.length) return [];
    const out: ServerAddressRecord[] = [];
    for (const slot of b.ports) {
      const port = ports.find((p) => p.id === slot.portId);
      if (!port) continue;
      const info = await this.networkInfo(port.networkId);
      for (const ip of port.fixedIps) {
        out.push({
          networkId: port.networkId,
          networkName: info.name,
          ipAddress: ip.ipAddress,
          version: ip.ipAddress.includes(":") ? 6 : 4,
          macAddress: port.macAddress,
          portId: port.id,
          type: "fixed",
        });
      }
    }
    return out;
  }

  /** DeleteServer: takes the build over (whatever step it is in) and tears the server down. */
  async delete(
    serverId: string,
    ctx: { requestId: string; userId: string; projectId: string },
  ): Promise<void> {
    // A run not started yet reads the row again (it is ours to tear down now).
    this.created.delete(serverId);
    let project: string | undefined;
    await this.o.db.transaction(async (tx) => {
      await tx.query(
        `INSERT INTO server_builds (server_id, phase, network_mode, max_attempts)
         VALUES ($1, 'done', 'none', 1) ON CONFLICT DO NOTHING`,
        [serverId],
      );
      await tx.query(
        `UPDATE server_builds SET phase = 'deleting', request_id = $2, lease_owner = '', lease_until = now(),
           generation = generation + 1, updated_at = now()
         WHERE server_id = $1`,
        [serverId, ctx.requestId],
      );
      const [row] = await tx.query<{ project_id: string }>(
        "UPDATE servers SET task_state = 'deleting', updated_at = now() WHERE id = $1 RETURNING project_id",
        [serverId],
      );
      project = row?.project_id;
      await tx.query(
        `INSERT INTO instance_actions (server_id, action, request_id, user_id, project_id)
         VALUES ($1, 'delete', $2, $3, $4) ON CONFLICT DO NOTHING`,
        [serverId, ctx.requestId, ctx.userId, ctx.projectId],
      );
    });
    if (project !== undefined) this.o.changes?.changed(project);
    await this.settle(serverId);
    const b = await this.acquire(serverId);
    if (!b) return;
    try {
      await this.cleanup(b);
    } catch (err) {
      if (err instanceof StaleLease) return;
      this.o.logger.warn({ err, serverId }, "delete step failed; will retry");
      await this.retryLater(b);
    }
  }
}

/** What a step write sets (see `persist`): one statement text per shape. */
interface StepShape {
  build: string[];
  server: string[];
  events: boolean;
  fault: boolean;
  release: boolean;
}

/** The SQL types of the columns a step writes, for reading them from the batch's JSON. */
const BUILD_COLUMNS: Record<string, string> = {
  phase: "text",
  requested: "jsonb",
  ports: "jsonb",
  attempt: "integer",
  selected: "jsonb",
  alternates: "jsonb",
  failed_hosts: "text[]",
  command_sent: "boolean",
  sent_at: "timestamptz",
  fault_code: "integer",
  fault_message: "text",
  fault_details: "text",
  end_state: "text",
};
const SERVER_COLUMNS: Record<string, string> = {
  host: "text",
  node: "text",
  task_state: "text",
  vm_state: "text",
  power_state: "integer",
  addresses: "jsonb",
  launched_at: "timestamptz",
  terminated_at: "timestamptz",
  deleted: "boolean",
  deleted_at: "timestamptz",
};

/**
 * One statement for any number of step writes of one shape: $1 is a JSON array of rows (server
 * id, leased generation, the build columns as b_*, the server columns as s_*, events, fault, and
 * the lease's end if not $3 ms from now), $2 our lease owner, $3 the lease length in ms. Returns the server ids whose build row carried our
 * lease (those whose writes happened).
 */
function stepStatement(shape: StepShape): string {
  const typeOf = (columns: Record<string, string>, k: string) => {
    const t = columns[k];
    if (!t) throw new Error(`persist: no column type known for ${k}`);
    return t;
  };
  const record = [
    "server_id uuid",
    "generation bigint",
    "lease_until timestamptz",
    "request_id text",
    "ok boolean",
    "events jsonb",
    "fault_code integer",
    "fault_message text",
    "fault_details text",
    "fault_host text",
    ...shape.build.map((k) => `b_${k} ${typeOf(BUILD_COLUMNS, k)}`),
    ...shape.server.map((k) => `s_${k} ${typeOf(SERVER_COLUMNS, k)}`),
  ];
  const sets = shape.build.map((k) => `${k} = w.b_${k}`);
  if (shape.release) sets.push("lease_owner = ''");
  sets.push("lease_until = coalesce(w.lease_until, now() + ($3 || ' milliseconds')::interval)");
  sets.push("updated_at = now()");
  const ctes = [
    `w AS (SELECT * FROM jsonb_to_recordset($1::jsonb) AS w(${record.join(", ")}))`,
    `b AS (UPDATE server_builds sb SET ${sets.join(", ")} FROM w
       WHERE sb.server_id = w.server_id AND sb.generation = w.generation AND sb.lease_owner = $2
       RETURNING sb.server_id)`,
  ];
  if (shape.server.length) {
    ctes.push(
      `s AS (UPDATE servers sv SET ${shape.server.map((k) => `${k} = w.s_${k}`).join(", ")}, updated_at = now()
         FROM w JOIN b USING (server_id) WHERE sv.id = w.server_id)`,
    );
  }
  if (shape.events) {
    ctes.push(
      `a AS (UPDATE instance_actions ia SET updated_at = now(),
           message = CASE WHEN w.ok THEN ia.message ELSE 'Error' END
         FROM w JOIN b USING (server_id)
         WHERE ia.server_id = w.server_id AND ia.request_id = w.request_id RETURNING ia.id, ia.server_id)`,
      `e AS (INSERT INTO instance_action_events (action_id, event, start_time, finish_time, result, traceback, host)
         SELECT a.id, x.event, x.start_time, coalesce(x.finish_time, now()), x.result, x.traceback, x.host
         FROM a JOIN w USING (server_id)
           CROSS JOIN jsonb_to_recordset(w.events)
             AS x(event text, start_time timestamptz, finish_time timestamptz, result text, traceback text, host text))`,
    );
  }
  if (shape.fault) {
    ctes.push(
      `f AS (INSERT INTO instance_faults (server_id, code, message, details, host)
         SELECT w.server_id, w.fault_code, w.fault_message, w.fault_details, w.fault_host FROM w JOIN b USING (server_id))`,
    );
  }
  return `WITH ${ctes.join(",\n")} SELECT server_id::text AS server_id FROM b`;
}

async function ignoreNotFound(p: Promise<unknown>): Promise<void> {
  try {
    await p;
  } catch (err) {
    if (!isStratusError(err, "not_found")) throw err;
  }
}
