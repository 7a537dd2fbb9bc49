// Every statement of the build flow on the compute database: taking a build's lease, writing its
// steps (batched per turn of the event loop), recording successes, giving a build back, finding
// builds to resume, and DeleteServer's takeover. Each write that touches servers is announced
// (stratus.server.changed) once it has committed.
import { type Database, TurnBatcher } from "@stratus/runtime";
import { cols } from "../columns.js";
import type { ServerChanges } from "../compute/changes.js";
import type { BuildColumns, BuildRow, Fault, ServerColumns, StepEvent, Success } from "./build.js";
import { StaleLease } from "./build.js";
import { BuildRun } from "./build-run.js";
import { jsonRow, type StepWriteRow, shapeOf, stepStatement } from "./step-statement.js";
import { columnsOf } from "./unrecorded-outcome.js";

/** What a step writes besides the outcomes its run left unrecorded. */
export interface StepWrite {
  build?: Partial<BuildColumns>;
  server?: Partial<ServerColumns>;
  event?: StepEvent | undefined;
  fault?: Fault | undefined;
  /** Gives the lease up (until `leaseUntil`, or at once). */
  release?: boolean;
  leaseUntil?: Date;
}

export class BuildStore {
  private readonly stepWriters = new Map<string, TurnBatcher<Record<string, unknown>, boolean>>();
  private readonly successes = new TurnBatcher((rs: Success[]) => this.writeSuccesses(rs));

  constructor(
    private readonly o: {
      db: Database;
      /** This conductor's identity in leases. */
      owner: string;
      leaseMs: number;
      /** Told of every committed write to servers (stratus.server.changed). */
      changes?: ServerChanges | undefined;
    },
  ) {}

  /** Takes the lease of a build nobody holds (generation bumped); undefined if held or done. */
  async acquire(serverId: string): Promise<BuildRun | undefined> {
    const sentAt = Date.now();
    const rows = await this.o.db.query<BuildRow>(
      `UPDATE server_builds b SET lease_owner = $2, lease_until = now() + ($3 || ' milliseconds')::interval,
         generation = b.generation + 1
       FROM servers s
       WHERE b.server_id = $1 AND s.id = b.server_id AND b.phase <> 'done'
         AND (b.lease_owner = '' OR b.lease_until < now())
       RETURNING ${cols("server_builds", "b")}, s.project_id, s.user_id, s.name, s.flavor, s.image_ref, s.metadata, s.host, s.created_at`,
      [serverId, this.o.owner, String(this.o.leaseMs)],
    );
    return rows[0] && new BuildRun(rows[0], sentAt + this.o.leaseMs);
  }

  /**
   * Writes a step's outcome under the run's lease (and extends it, or gives it up), in one
   * statement, with the outcomes the run left unrecorded first (this step's columns win). Throws
   * StaleLease when the build row no longer carries the run's generation and our owner: then
   * nothing was written. Writes of the same shape (the same columns, events or not, fault or not,
   * lease given up or kept) made in one turn of the event loop go in one statement.
   */
  async write(run: BuildRun, step: StepWrite): Promise<void> {
    const b = run.row;
    const earlier = columnsOf(run.unrecorded);
    const build = { ...earlier.build, ...step.build };
    const server = { ...earlier.server, ...step.server };
    const w: StepWriteRow = {
      serverId: b.server_id,
      generation: b.generation,
      requestId: b.request_id,
      build,
      server,
      events: step.event ? [...earlier.events, step.event] : earlier.events,
      fault: step.fault,
      release: step.release === true,
      leaseUntil: step.leaseUntil,
    };
    const shape = shapeOf(w);
    const key = JSON.stringify(shape);
    let writer = this.stepWriters.get(key);
    if (!writer) {
      const sql = stepStatement(shape);
      writer = new TurnBatcher((rows: Record<string, unknown>[]) => this.writeSteps(sql, rows));
      this.stepWriters.set(key, writer);
    }
    const sentAt = Date.now();
    if (!(await writer.add(jsonRow(w)))) throw new StaleLease(`lease on ${b.server_id} lost`);
    if (!w.release && !w.leaseUntil) run.extended(sentAt, this.o.leaseMs);
    if (Object.keys(server).length) this.o.changes?.changed(b.project_id);
    run.written(build, server);
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
      // custom plan sees nothing a generic one does not, and planning it on most calls was a
      // large share of the statement's cost.
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

  /**
   * The common result, a success for the attempt in flight on that host, in one statement: the
   * build row is taken (generation bumped) only when nobody holds it and it is spawning that
   * attempt on that host, and finished with the server ACTIVE and the instance-action event, as
   * the general path (lease, then a step write) does in two. Answers the server's project when
   * written; undefined when nothing was written and the general path decides (a stale or
   * duplicate result, a build someone holds). The successes that arrive in one turn of the event
   * loop are written by one statement.
   */
  async succeed(r: Success): Promise<string | undefined> {
    const project = await this.successes.add(r);
    if (project !== undefined) this.o.changes?.changed(project);
    return project;
  }

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

  /** Gives the build back, to be taken again after `ms` (a sweep, or a kick, resumes it). */
  async retryLater(b: BuildRow, ms = 2000): Promise<void> {
    await this.o.db
      .query(
        `UPDATE server_builds SET lease_owner = '', lease_until = now() + ($3 || ' milliseconds')::interval
         WHERE server_id = $1 AND generation = $2 AND lease_owner = $4`,
        [b.server_id, b.generation, String(ms), this.o.owner],
      )
      .catch(() => undefined);
  }

  /** At start: the leases this replica held before it restarted (nobody runs those builds now). */
  async freeOwnLeases(): Promise<void> {
    await this.o.db.query(
      "UPDATE server_builds SET lease_owner = '', lease_until = now() WHERE lease_owner = $1 AND phase <> 'done' AND NOT command_sent",
      [this.o.owner],
    );
  }

  /** Unfinished builds whose lease ran out, longest expired first. */
  async expired(): Promise<string[]> {
    const rows = await this.o.db.query<{ server_id: string }>(
      `SELECT server_id FROM server_builds
       WHERE phase <> 'done' AND lease_until < now()
       ORDER BY lease_until LIMIT 500`,
    );
    return rows.map((r) => r.server_id);
  }

  /** Where a build stands, for a result nobody could take the build for. */
  async progress(serverId: string): Promise<{ phase: string; attempt: number } | undefined> {
    const rows = await this.o.db.query<{ phase: string; attempt: number }>(
      "SELECT phase, attempt FROM server_builds WHERE server_id = $1",
      [serverId],
    );
    return rows[0];
  }

  /**
   * DeleteServer's takeover, in one transaction: the build moves to `deleting` whatever step it
   * is in, with a new generation (a run still holding it stops at its next write) and no lease
   * (whoever takes it next tears it down); the server shows task_state deleting; the delete
   * action is recorded.
   */
  async markDeleting(
    serverId: string,
    ctx: { requestId: string; userId: string; projectId: string },
  ): Promise<{ project_id: string; vm_state: string; host: string } | undefined> {
    let server: { project_id: string; vm_state: string; host: string } | undefined;
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
      const [row] = await tx.query<{ project_id: string; vm_state: string; host: string | null }>(
        `UPDATE servers SET task_state = 'deleting', updated_at = now() WHERE id = $1
         RETURNING project_id, vm_state, host`,
        [serverId],
      );
      server = row ? { project_id: row.project_id, vm_state: row.vm_state, host: row.host ?? "" } : undefined;
      await tx.query(
        `INSERT INTO instance_actions (server_id, action, request_id, user_id, project_id)
         VALUES ($1, 'delete', $2, $3, $4) ON CONFLICT DO NOTHING`,
        [serverId, ctx.requestId, ctx.userId, ctx.projectId],
      );
    });
    if (server) this.o.changes?.changed(server.project_id);
    return server;
  }
}
