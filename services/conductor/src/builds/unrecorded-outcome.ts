/**
 * Outcomes a build step reached but did not write, and how a later run recovers them.
 *
 * Allocation and scheduling do not write their outcome: a run keeps it (BuildRun.defer) and the
 * build's next write carries it (BuildStore.write), together with that write's own step. On the
 * common path that next write is the one after the build command's send, so a build makes one
 * write where it would make two or three; it may also be a failure's (ERROR with the ports
 * recorded, so that the cleanup finds them) or an alternate's.
 *
 * Recovery rule: a step may leave its outcome unrecorded only when a run that starts again from
 * the last write (this replica restarted, another one after the lease ran out, a delete) finds it
 * anyway, from what the outcome left in the peers that own it:
 * - `allocated` (the ports): every port the build makes is created with the server as its device
 *   and its slot's name (`slotName`). A later run lists the device's ports and adopts each slot's
 *   port by name instead of making another (`portsMadeEarlier`); a user's port is claimed again
 *   for the same device, which gives the same answer; a cleanup finds both kinds by device
 *   (`portsOfDevice`). A build leased for the first time (generation 1) has had no earlier run,
 *   so it skips the lookup.
 * - `scheduled` (host, selection, alternates): the scheduler's claim for the server's consumer
 *   names the host it chose. A later run (generation above 1) asks placement for that claim and
 *   keeps the build on that host (`scheduledEarlier`): the build command may have gone there
 *   already, and the same attempt sent again is answered once. A claim on a host that failed an
 *   attempt is the one a reschedule replaces, so it does not count. A delete sends its
 *   DeleteCommand to the host of that claim when none is recorded (`hostOf`). What is not found
 *   again are the alternates: a failure on that host asks the scheduler again.
 * Nothing else is deferred: every other step writes its outcome before the run goes on.
 */
import type { BuildColumns, BuildRow, PortSlot, ServerColumns, StepEvent } from "./build.js";
import type { Destinations, Ports, PortView } from "./peers.js";
import type { SelectionJson } from "./selection-json.js";

export type UnrecordedOutcome =
  | {
      step: "allocated";
      requested: BuildRow["requested"];
      ports: PortSlot[];
      event: StepEvent;
    }
  | {
      step: "scheduled";
      attempt: number;
      selected: SelectionJson;
      alternates: SelectionJson[];
      event: StepEvent;
    };

/** The columns and events the next write carries for these outcomes, oldest first (later ones win). */
export function columnsOf(outcomes: readonly UnrecordedOutcome[]): {
  build: Partial<BuildColumns>;
  server: Partial<ServerColumns>;
  events: StepEvent[];
} {
  let build: Partial<BuildColumns> = {};
  let server: Partial<ServerColumns> = {};
  const events: StepEvent[] = [];
  for (const o of outcomes) {
    if (o.step === "allocated") {
      build = { ...build, requested: o.requested, ports: o.ports };
    } else {
      build = {
        ...build,
        phase: "binding",
        attempt: o.attempt,
        selected: o.selected,
        alternates: o.alternates,
        command_sent: false,
      };
      server = { host: o.selected.host, node: o.selected.host };
    }
    events.push(o.event);
  }
  return { build, server, events };
}

/** What the run sees once it has the outcome: the build moved on to the next step. */
export function applyOutcome(row: BuildRow, o: UnrecordedOutcome): void {
  if (o.step === "allocated") {
    Object.assign(row, { requested: o.requested, ports: o.ports, phase: "scheduling" });
    return;
  }
  Object.assign(row, {
    phase: "binding",
    attempt: o.attempt,
    selected: o.selected,
    alternates: o.alternates,
    command_sent: false,
  });
  row.host = o.selected.host;
}

/** The name of the port the conductor makes for a server's slot: how a later run finds it. */
export const slotName = (serverId: string, slot: number) => `server-${serverId}-port-${slot}`;
const isSlotName = (serverId: string, name: string) => name.startsWith(`server-${serverId}-port-`);

/** Ports an earlier run of this build may have made without recording them (see above). */
export async function portsMadeEarlier(ports: Ports, b: BuildRow): Promise<PortView[]> {
  return Number(b.generation) <= 1 ? [] : await ports.ofDevice(b.server_id);
}

/** The ids of every port the server holds: those recorded and those found by device. */
export async function portsOfDevice(
  ports: Ports,
  b: BuildRow,
): Promise<{ made: Set<string>; brought: Set<string> }> {
  const made = new Set(b.ports.filter((p) => p.created).map((p) => p.portId));
  const brought = new Set(b.ports.filter((p) => !p.created).map((p) => p.portId));
  for (const p of await ports.ofDevice(b.server_id)) {
    if (isSlotName(b.server_id, p.name)) made.add(p.id);
    else brought.add(p.id);
  }
  return { made, brought };
}

/** The claim an earlier run's schedule made and did not record (see above); undefined if none. */
export async function scheduledEarlier(
  destinations: Destinations,
  b: BuildRow,
): Promise<SelectionJson | undefined> {
  if (Number(b.generation) <= 1) return undefined;
  const claimed = await destinations.claimedNode(b.server_id);
  return claimed && !b.failed_hosts.includes(claimed.host) ? claimed : undefined;
}

/** The host a build's command may have gone to: the one recorded, else its claim's. */
export async function hostOf(destinations: Destinations, b: BuildRow): Promise<string | undefined> {
  return b.host || (await destinations.claimedNode(b.server_id))?.host;
}
