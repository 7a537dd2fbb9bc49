// One run of a build under this replica's lease: the row as the run sees it, and the outcomes it
// reached and has not written yet (unrecorded-outcome.ts).
import type { BuildColumns, BuildRow, ServerColumns } from "./build.js";
import { applyOutcome, type UnrecordedOutcome } from "./unrecorded-outcome.js";

export class BuildRun {
  private deferred: UnrecordedOutcome[] = [];

  /** `row`: the build as last written (or as CreateServers wrote it), changed as the run goes. */
  constructor(readonly row: BuildRow) {}

  /** Takes a step's outcome without writing it: the build's next write carries it. */
  defer(outcome: UnrecordedOutcome): void {
    applyOutcome(this.row, outcome);
    this.deferred.push(outcome);
  }

  /** What the next write must carry before its own step, oldest first. */
  get unrecorded(): readonly UnrecordedOutcome[] {
    return this.deferred;
  }

  /** A write went through with these columns: they are the row's now, and nothing is unrecorded. */
  written(build: Partial<BuildColumns>, server: Partial<ServerColumns>): void {
    this.deferred = [];
    Object.assign(this.row, build);
    if (server.host !== undefined) this.row.host = server.host;
  }
}
