// Keeps the leases of this replica's runs while they wait on peers, and stops a run from calling
// a peer once its lease may be gone.
//
// Why: the lease fences a run's writes (each carries the run's generation), not its calls. A run
// whose lease ran out while it waited on a peer (a NATS stream electing a leader, a slow
// replica) and then went on would bind ports or send a build command while another run, which
// took the build over, chose a different host (its schedule went unrecorded, UnrecordedOutcome).
// So:
// - every `leaseMs / 5` one statement renews the lease of every run this process holds; a run
//   whose row is no longer ours (a delete took it over, or the lease ran out) is marked lost;
// - every call a run makes to a peer first checks that its lease holds for another
//   `leaseMs / 4` (BuildRun.assertLeased): a run that lost it, or whose renewals stopped (the
//   database unreachable), stops with StaleLease and leaves the build to whoever takes it next;
// - every RPC of a run carries `stratus-not-after`, an eighth of a lease before the lease's end:
//   the peer's pipeline refuses the call if it gets to its handler later (a peer that stalled
//   with the call in its socket).
// What holds, then: another run takes a build over only after this process stopped renewing;
// each call this run made was sent at least a quarter lease before that, and a peer started it
// at least an eighth before (hosts' clocks agreeing to well within that). What is not fenced: a
// handler that started in time and writes more than an eighth of a lease later (3.75 s with the
// defaults), and the build command, a NATS message: a late one goes to the host the build's
// claim names, which a later run also chooses (UnrecordedOutcome).
import { currentContext, type Database, type Logger, runWithContext } from "@stratus/runtime";
import { buildContext } from "./build.js";
import type { BuildContext, Leases } from "./build-context.js";
import type { BuildRun } from "./build-run.js";

export class LeaseKeeper implements Leases {
  private readonly held = new Set<BuildRun>();
  private timer: NodeJS.Timeout | undefined;
  private renewing = false;

  constructor(
    private readonly o: {
      db: Database;
      owner: string;
      leaseMs: number;
      logger?: Logger | undefined;
    },
  ) {}

  /** How long a run's lease must still hold when it calls a peer. */
  get marginMs(): number {
    return this.o.leaseMs / 4;
  }

  /**
   * Runs `body` as the build's user and under its request id (buildContext), with `run`'s lease
   * kept and `body` given peers that check the lease first.
   */
  hold<T>(ctx: BuildContext, run: BuildRun, body: (ctx: BuildContext) => Promise<T>): Promise<T> {
    return runWithContext(buildContext(run.row), () => this.keep(ctx, run, body));
  }

  private async keep<T>(
    ctx: BuildContext,
    run: BuildRun,
    body: (ctx: BuildContext) => Promise<T>,
  ): Promise<T> {
    this.held.add(run);
    this.timer ??= setInterval(() => void this.renew(), this.o.leaseMs / 5).unref();
    try {
      return await body(fenced(ctx, run, this.marginMs));
    } finally {
      this.held.delete(run);
      if (!this.held.size) this.stop();
    }
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  /** One statement for every run held now; a renewal still running is not overtaken. */
  private async renew(): Promise<void> {
    if (this.renewing || !this.held.size) return;
    this.renewing = true;
    const runs = [...this.held];
    const sentAt = Date.now();
    try {
      const rows = await this.o.db.query<{ server_id: string }>(
        `UPDATE server_builds b SET lease_until = now() + ($3 || ' milliseconds')::interval
         FROM unnest($1::uuid[], $2::bigint[]) AS r(server_id, generation)
         WHERE b.server_id = r.server_id AND b.generation = r.generation AND b.lease_owner = $4
           AND b.phase <> 'done'
         RETURNING b.server_id::text AS server_id`,
        [
          runs.map((r) => r.row.server_id),
          runs.map((r) => String(r.row.generation)),
          String(this.o.leaseMs),
          this.o.owner,
        ],
        { name: "conductor_leases_renewed" },
      );
      const renewed = new Set(rows.map((r) => r.server_id));
      for (const run of runs) {
        if (renewed.has(run.row.server_id)) run.extended(sentAt, this.o.leaseMs);
        // Given up by its own last write, taken over by a delete, or run out: no more calls.
        else run.lose();
      }
    } catch (err) {
      // Not renewed: each run's lease ends as it stands, and its calls stop a margin before.
      this.o.logger?.warn({ err }, "renewing build leases failed");
    } finally {
      this.renewing = false;
    }
  }
}

/**
 * `ctx` with peers that check `run`'s lease before each call and give the call the time its peer
 * must start it by (the events it announces excepted).
 */
function fenced(ctx: BuildContext, run: BuildRun, marginMs: number): BuildContext {
  const admit = () => {
    run.assertLeased(marginMs);
    return run.callNotAfter(marginMs);
  };
  return {
    ...ctx,
    ports: checked(ctx.ports, admit),
    destinations: checked(ctx.destinations, admit),
    commands: checked(ctx.commands, admit, ["announce"]),
  };
}

/**
 * `peer` whose methods (but those `open`) first call `admit`, which throws (StaleLease) or says
 * the time the call must start at its peer by, and then run with that time as the context's
 * `notAfter`.
 */
function checked<T extends object>(peer: T, admit: () => number, open: readonly string[] = []): T {
  return new Proxy(peer, {
    get(target, key, receiver) {
      const value = Reflect.get(target, key, receiver);
      if (typeof value !== "function" || open.includes(String(key))) return value;
      return (...args: unknown[]) => {
        let notAfter: number;
        try {
          notAfter = admit();
        } catch (err) {
          // As the call itself would fail: a rejection, which `.catch` and `await` both see.
          return Promise.reject(err);
        }
        const context = currentContext();
        return context
          ? runWithContext({ ...context, notAfter }, () => value.apply(target, args))
          : value.apply(target, args);
      };
    },
  });
}
