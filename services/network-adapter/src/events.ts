// Publishing committed calls' events on the next turn of the event loop, those of every call that
// finished in this turn together, each under its own request context: NATS then writes them to
// its socket once per turn instead of once per call (core NATS, fire and forget).
import {
  currentContext,
  type EventBus,
  type Logger,
  type RequestContext,
  runWithContext,
} from "@stratus/runtime";
import type { PendingEvent } from "./core/context.js";

export class EventBatcher {
  private pending: { ctx: RequestContext | undefined; events: PendingEvent[] }[] = [];

  constructor(
    private readonly bus: EventBus,
    private readonly logger: Logger,
  ) {}

  add(events: PendingEvent[]): void {
    if (!events.length) return;
    if (!this.pending.length) setImmediate(() => this.flush());
    this.pending.push({ ctx: currentContext(), events });
  }

  flush(): void {
    const batch = this.pending;
    this.pending = [];
    for (const { ctx, events } of batch) {
      const publish = () => {
        for (const e of events) {
          try {
            this.bus.publish(e.subject, e.schema, e.value);
          } catch (err) {
            this.logger.error({ err, subject: e.subject }, "event not published");
          }
        }
      };
      if (ctx) runWithContext(ctx, publish);
      else publish();
    }
  }
}
