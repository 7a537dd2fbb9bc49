// Build and delete commands from the conductor (JetStream, durable). A build does only
// CheckAndUpdatePorts (never creates, allocates or binds a port), then the driver's spawn, then
// VifPlugged per port and the BuildResult. Each outcome is recorded, so that a redelivered
// command is answered with the same result instead of being run again.
import { timestampNow } from "@bufbuild/protobuf/wkt";
import {
  type BuildCommand,
  BuildResultSchema,
  type DeleteCommand,
  DeleteResultSchema,
  VifPluggedSchema,
} from "@stratus/contracts/events/v1";
import type { NetworkService } from "@stratus/contracts/network/v1";
import {
  type Database,
  type EventBus,
  type Logger,
  StratusError,
  Subjects,
  type serviceClient,
  TurnBatcher,
} from "@stratus/runtime";
import { KeyedQueue, sleep } from "../concurrency.js";
import { PowerState, SpawnError, type VirtDriver } from "../driver/driver.js";

type NetworkClient = ReturnType<typeof serviceClient<typeof NetworkService>>;

interface Outcome {
  success: boolean;
  error: string;
  retryable: boolean;
}

/**
 * Port check failures that another host cannot fix: the port is gone, belongs to another device,
 * or the network-adapter cannot check at all. A binding that does not match this host (the
 * adapter says invalid_input) is retryable: a reschedule binds the ports to the next host again.
 */
const PERMANENT_PORT_ERRORS = new Set([
  "not_found",
  "port_in_use",
  "forbidden",
  "unauthorized",
  "unimplemented",
]);

export class CommandHandler {
  private readonly queue = new KeyedQueue();

  constructor(
    private readonly deps: {
      db: Database;
      bus: EventBus;
      driver: VirtDriver;
      network: NetworkClient;
      hosts: ReadonlySet<string>;
      logger: Logger;
      /** Attempts at CheckAndUpdatePorts while the network-adapter is unavailable. */
      portCheckAttempts?: number;
    },
  ) {}

  /**
   * Whether a command may run: its host is ours and is the host whose subject it came on (given,
   * from a host's consumer). Anything else is malformed, not another agent's: each agent reads
   * only its own hosts' subjects, so no other agent would get it on a redelivery.
   */
  private ours(host: string, subjectHost: string | undefined): boolean {
    if (this.deps.hosts.has(host) && (subjectHost === undefined || subjectHost === host)) return true;
    this.deps.logger.warn({ host, subjectHost }, "command for a host this agent does not run; dropped");
    return false;
  }

  /** Runs in the order commands arrive per (server, host); queued synchronously on call. */
  async build(cmd: BuildCommand, subjectHost?: string): Promise<void> {
    if (!this.ours(cmd.host, subjectHost)) return;
    return this.queue.run(`${cmd.serverId}@${cmd.host}`, () => this.runBuild(cmd));
  }

  async delete(cmd: DeleteCommand, subjectHost?: string): Promise<void> {
    if (!this.ours(cmd.host, subjectHost)) return;
    return this.queue.run(`${cmd.serverId}@${cmd.host}`, () => this.runDelete(cmd));
  }

  private recorded(cmd: BuildCommand): Promise<Outcome | undefined> {
    return this.lookups.add(cmd);
  }

  private async record(cmd: BuildCommand, o: Outcome): Promise<void> {
    await this.records.add({ cmd, o });
  }

  // The outcomes looked up and recorded in one turn of the event loop (a delivery of commands
  // brings several at once) go in one statement each.
  private readonly lookups = new TurnBatcher(async (cmds: BuildCommand[]) => {
    const rows = await this.deps.db.query<{
      server_id: string;
      host: string;
      attempt: number;
      success: boolean;
      error: string;
      retryable: boolean;
    }>(
      `SELECT server_id, host, attempt, success, error, retryable FROM build_outcomes
       WHERE (server_id, host, attempt) IN (SELECT * FROM unnest($1::text[], $2::text[], $3::int[]))`,
      [cmds.map((c) => c.serverId), cmds.map((c) => c.host), cmds.map((c) => c.attempt)],
    );
    const key = (x: { host: string; attempt: number }, server: string) => `${server}@${x.host}#${x.attempt}`;
    const found = new Map(rows.map((r) => [key(r, r.server_id), r]));
    return cmds.map((c): Outcome | undefined => {
      const r = found.get(key(c, c.serverId));
      return r && { success: r.success, error: r.error, retryable: r.retryable };
    });
  });

  private readonly records = new TurnBatcher(async (items: { cmd: BuildCommand; o: Outcome }[]) => {
    await this.deps.db.query(
      `INSERT INTO build_outcomes (server_id, host, attempt, success, error, retryable)
       SELECT * FROM unnest($1::text[], $2::text[], $3::int[], $4::boolean[], $5::text[], $6::boolean[])
       ON CONFLICT DO NOTHING`,
      [
        items.map((i) => i.cmd.serverId),
        items.map((i) => i.cmd.host),
        items.map((i) => i.cmd.attempt),
        items.map((i) => i.o.success),
        items.map((i) => i.o.error),
        items.map((i) => i.o.retryable),
      ],
    );
    return items.map(() => undefined);
  });

  private async runBuild(cmd: BuildCommand): Promise<void> {
    const log = this.deps.logger.child({ server: cmd.serverId, host: cmd.host, attempt: cmd.attempt });
    const again = await this.recorded(cmd);
    if (again) {
      log.info({ success: again.success }, "build command redelivered: reporting the recorded outcome");
      await this.report(
        cmd,
        again,
        (await this.deps.driver.get(cmd.serverId, cmd.host))?.portIds ?? cmd.portIds,
      );
      return;
    }
    const running = await this.deps.driver.get(cmd.serverId, cmd.host);
    if (running) {
      // Spawned before (e.g. the agent stopped before recording the outcome): report it.
      log.info("instance already running on the host: reporting success");
      const ok = { success: true, error: "", retryable: false };
      await this.record(cmd, ok);
      await this.report(cmd, ok, running.portIds);
      return;
    }
    const outcome = await this.checkAndSpawn(cmd);
    await this.record(cmd, outcome);
    if (outcome.success) log.debug("instance spawned");
    else log.warn({ reason: outcome.error, retryable: outcome.retryable }, "build failed");
    await this.report(cmd, outcome, cmd.portIds);
  }

  private async checkAndSpawn(cmd: BuildCommand): Promise<Outcome> {
    if (cmd.portIds.length) {
      const failure = await this.checkPorts(cmd);
      if (failure) return failure;
    }
    try {
      await this.deps.driver.spawn({
        serverId: cmd.serverId,
        host: cmd.host,
        attempt: cmd.attempt,
        portIds: [...cmd.portIds],
        name: cmd.name,
        imageRef: cmd.imageRef,
        vcpus: Number(cmd.vcpus),
        memoryMb: Number(cmd.memoryMb),
        diskGb: Number(cmd.diskGb),
        metadata: { ...cmd.metadata },
        alreadyChecked: true,
      });
      return { success: true, error: "", retryable: false };
    } catch (err) {
      if (err instanceof SpawnError) return { success: false, error: err.message, retryable: err.retryable };
      // A database failure of our own: let the command be redelivered rather than guess.
      throw err;
    }
  }

  /** CheckAndUpdatePorts; undefined when the ports are fine, else the failed outcome. */
  private async checkPorts(cmd: BuildCommand): Promise<Outcome | undefined> {
    const attempts = this.deps.portCheckAttempts ?? 5;
    const ports = cmd.portIds.join(", ");
    for (let i = 1; ; i++) {
      try {
        await this.deps.network.checkAndUpdatePorts({
          serverId: cmd.serverId,
          host: cmd.host,
          portIds: cmd.portIds,
        });
        return undefined;
      } catch (err) {
        const se = err instanceof StratusError ? err : new StratusError("internal", String(err));
        if (se.kind === "unavailable" && i < attempts) {
          await sleep(200 * 2 ** i);
          continue;
        }
        return {
          success: false,
          error: `port check failed for port(s) ${ports} on host ${cmd.host}: ${se.message}`,
          retryable: !PERMANENT_PORT_ERRORS.has(se.kind),
        };
      }
    }
  }

  private async report(cmd: BuildCommand, o: Outcome, portIds: readonly string[]): Promise<void> {
    const { bus } = this.deps;
    if (o.success) {
      for (const portId of portIds) {
        bus.publish(Subjects.vifPlugged, VifPluggedSchema, {
          serverId: cmd.serverId,
          portId,
          host: cmd.host,
        });
      }
    }
    await bus.publishDurable(Subjects.computeResult, BuildResultSchema, {
      serverId: cmd.serverId,
      host: cmd.host,
      attempt: cmd.attempt,
      success: o.success,
      error: o.error,
      retryable: o.retryable,
      powerState: o.success ? PowerState.running : 0,
      at: timestampNow(),
    });
  }

  private async runDelete(cmd: DeleteCommand): Promise<void> {
    const destroyed = await this.deps.driver.destroy(cmd.serverId, cmd.host);
    this.deps.logger.info({ server: cmd.serverId, host: cmd.host, destroyed }, "delete command handled");
    await this.deps.bus.publishDurable(Subjects.computeDeleted, DeleteResultSchema, {
      serverId: cmd.serverId,
      host: cmd.host,
      success: true,
    });
  }

  /**
   * After a restart: every instance still running on one of our hosts is reported again with a
   * BuildResult success for the attempt that spawned it (the conductor treats a repeat as a no-op
   * and learns of a build whose result it never saw).
   */
  async reconcile(): Promise<number> {
    const instances = await this.deps.driver.list();
    let reported = 0;
    for (const inst of instances) {
      if (!this.deps.hosts.has(inst.host)) {
        this.deps.logger.warn(
          { server: inst.serverId, host: inst.host },
          "instance on a host this agent no longer runs; left alone",
        );
        continue;
      }
      await this.deps.bus.publishDurable(Subjects.computeResult, BuildResultSchema, {
        serverId: inst.serverId,
        host: inst.host,
        attempt: inst.attempt,
        success: true,
        powerState: inst.powerState,
        at: timestampNow(),
      });
      reported++;
    }
    return reported;
  }

  /** Outcomes older than the command stream's max age cannot be asked for again. */
  async pruneOutcomes(): Promise<void> {
    await this.deps.db.query("DELETE FROM build_outcomes WHERE at < now() - interval '2 days'");
  }
}
