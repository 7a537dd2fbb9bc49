// Builds that ask the scheduler the same question at the same time share one SelectDestinations
// call, as one multi-instance request would (Nova schedules a multi-create in one call): the
// candidate search is done once for the batch and each instance still gets its own claim and
// alternates. No build waits for a timer: a request goes out at once when fewer than
// `maxCalls` calls for its spec are in flight, and otherwise joins the next batch, sent as soon as
// a call returns. A batch is all-or-nothing at the scheduler, so when it cannot place every
// instance its members are asked again one by one, and each gets its own answer.
import type { MessageInitShape } from "@bufbuild/protobuf";
import type { Client } from "@connectrpc/connect";
import type {
  InstanceDestinations,
  RequestSpecSchema,
  SchedulerService,
} from "@stratus/contracts/scheduler/v1/scheduler";
import { isStratusError, type Logger } from "@stratus/runtime";

type Spec = MessageInitShape<typeof RequestSpecSchema>;

interface Waiter {
  instanceUuid: string;
  resolve: (d: InstanceDestinations) => void;
  reject: (err: unknown) => void;
}

interface Lane {
  spec: Spec;
  waiting: Waiter[];
  inFlight: number;
}

export class ScheduleBatcher {
  private readonly lanes = new Map<string, Lane>();

  constructor(
    private readonly scheduler: Client<typeof SchedulerService>,
    private readonly logger: Logger,
    private readonly options: { maxBatch: number; maxCalls: number },
  ) {}

  /** The destination of one instance; `spec.instanceUuids` must hold exactly that instance. */
  select(spec: Spec): Promise<InstanceDestinations> {
    const instanceUuid = spec.instanceUuids?.[0] ?? "";
    if (this.options.maxBatch <= 1) return this.single(spec);
    // Everything but the instance decides whether two builds may share a call.
    const key = JSON.stringify({ ...spec, instanceUuids: [] }, (_k, v) =>
      typeof v === "bigint" ? v.toString() : v,
    );
    let lane = this.lanes.get(key);
    if (!lane) {
      lane = { spec: { ...spec, instanceUuids: [] }, waiting: [], inFlight: 0 };
      this.lanes.set(key, lane);
    }
    const done = new Promise<InstanceDestinations>((resolve, reject) => {
      lane.waiting.push({ instanceUuid, resolve, reject });
    });
    this.pump(key, lane);
    return done;
  }

  private pump(key: string, lane: Lane): void {
    while (lane.waiting.length && lane.inFlight < this.options.maxCalls) {
      const batch = lane.waiting.splice(0, this.options.maxBatch);
      lane.inFlight++;
      void this.send(lane.spec, batch).finally(() => {
        lane.inFlight--;
        if (lane.waiting.length) this.pump(key, lane);
        else if (lane.inFlight === 0) this.lanes.delete(key);
      });
    }
  }

  private async send(spec: Spec, batch: Waiter[]): Promise<void> {
    if (batch.length === 1) {
      const w = batch[0]!;
      await this.single({ ...spec, instanceUuids: [w.instanceUuid] }).then(w.resolve, w.reject);
      return;
    }
    // The call carries the request id of the build that sent it; this line ties the others to it.
    if (this.logger.isLevelEnabled("debug")) {
      this.logger.debug({ instances: batch.map((w) => w.instanceUuid) }, "SelectDestinations for a batch");
    }
    try {
      const res = await this.scheduler.selectDestinations({
        spec: { ...spec, instanceUuids: batch.map((w) => w.instanceUuid) },
      });
      const byUuid = new Map(res.destinations.map((d) => [d.instanceUuid, d]));
      for (const w of batch) {
        const d = byUuid.get(w.instanceUuid);
        if (d) w.resolve(d);
        else w.reject(new Error(`scheduler returned no destination for ${w.instanceUuid}`));
      }
    } catch (err) {
      if (!isStratusError(err, "no_valid_host")) {
        for (const w of batch) w.reject(err);
        return;
      }
      // Not all of them fit (the scheduler released what it had claimed): one by one.
      this.logger.debug({ size: batch.length }, "batch did not fit; scheduling its instances one by one");
      await Promise.all(
        batch.map((w) => this.single({ ...spec, instanceUuids: [w.instanceUuid] }).then(w.resolve, w.reject)),
      );
    }
  }

  private async single(spec: Spec): Promise<InstanceDestinations> {
    const res = await this.scheduler.selectDestinations({ spec });
    const d = res.destinations[0];
    if (!d) throw new Error("scheduler returned no destination");
    return d;
  }
}
