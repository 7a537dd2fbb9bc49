// Which projects' servers changed: the conductor says so on NATS (stratus.server.changed) after
// each write to servers committed, so that a reader caching what it read of servers (the api's
// list cache) can drop it. Writes in one synchronous run go out as one message.
import { ServersChangedSchema } from "@stratus/contracts/events/v1";
import { type EventBus, Subjects } from "@stratus/runtime";

export class ServerChanges {
  private readonly pending = new Set<string>();
  private scheduled = false;

  constructor(private readonly publish: (projectIds: string[]) => void) {}

  static over(bus: EventBus): ServerChanges {
    return new ServerChanges((projectIds) =>
      bus.publish(Subjects.serversChanged, ServersChangedSchema, { projectIds }),
    );
  }

  /** Call once the write to this project's servers has committed. */
  changed(projectId: string): void {
    this.pending.add(projectId);
    if (this.scheduled) return;
    this.scheduled = true;
    queueMicrotask(() => {
      this.scheduled = false;
      const ids = [...this.pending];
      this.pending.clear();
      this.publish(ids);
    });
  }
}
