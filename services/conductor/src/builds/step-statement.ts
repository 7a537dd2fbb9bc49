// The statement that writes build steps: any number of step writes of one shape in one statement,
// each checked against its own lease. BuildStore.write gathers the writes of one turn of the event
// loop by shape and runs this statement for each shape.
import type { BuildColumns, Fault, ServerColumns, StepEvent } from "./build.js";

/** What a step write sets: one statement text per shape. */
export interface StepShape {
  build: string[];
  server: string[];
  events: boolean;
  fault: boolean;
  release: boolean;
}

/** The SQL types of the columns a step writes, for reading them from the batch's JSON. */
const BUILD_COLUMNS: Record<keyof BuildColumns, string> = {
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
const SERVER_COLUMNS: Record<keyof ServerColumns, string> = {
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

/** One step write: the build and server columns, events and fault, under the run's lease. */
export interface StepWriteRow {
  serverId: string;
  generation: string;
  requestId: string;
  build: Partial<BuildColumns>;
  server: Partial<ServerColumns>;
  events: StepEvent[];
  fault?: Fault | undefined;
  release: boolean;
  /** The lease's end, if not the lease length from now. */
  leaseUntil?: Date | undefined;
}

export function shapeOf(w: StepWriteRow): StepShape {
  return {
    build: Object.keys(w.build).sort(),
    server: Object.keys(w.server).sort(),
    events: w.events.length > 0,
    fault: w.fault !== undefined,
    release: w.release,
  };
}

/** A write as one element of the statement's JSON array (see stepStatement). */
export function jsonRow(w: StepWriteRow): Record<string, unknown> {
  const f = w.fault;
  return {
    ...Object.fromEntries(Object.entries(w.build).map(([k, v]) => [`b_${k}`, v])),
    ...Object.fromEntries(Object.entries(w.server).map(([k, v]) => [`s_${k}`, v])),
    server_id: w.serverId,
    generation: w.generation,
    lease_until: w.leaseUntil ?? null,
    request_id: w.requestId,
    ok: w.events.every((e) => e.ok),
    events: w.events.map((e) => ({
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
}

/**
 * One statement for any number of step writes of one shape: $1 is a JSON array of rows (server
 * id, leased generation, the build columns as b_*, the server columns as s_*, events, fault, and
 * the lease's end if not $3 ms from now), $2 our lease owner, $3 the lease length in ms. The build
 * row's UPDATE is the first CTE; the server row, the action event and the fault are further CTEs
 * keyed on what it returned, so nothing is written under a lost lease. Returns the server ids whose
 * build row carried our lease (those whose writes happened).
 */
export function stepStatement(shape: StepShape): string {
  const typeOf = (columns: Record<string, string>, k: string) => {
    const t = columns[k];
    if (!t) throw new Error(`step write: no column type known for ${k}`);
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
