// Which command stream carries a host's commands: its shard's stream (Streams.computeCommands),
// unless the host's agent is of an earlier version that reads only the unsharded stream
// (Streams.computeCommandsUnsharded). The agent's durable consumers say which: a host goes to the
// unsharded stream only while it has a consumer there and none on its shard's stream. An agent of
// this version makes both where the unsharded stream exists, so a route that is late to change
// (cached, or decided by a conductor of the earlier version) still reaches it.
import { Streams } from "@stratus/runtime";

/** Whether a durable consumer exists (EventBus.hasConsumer). */
export interface ConsumerLookup {
  hasConsumer(stream: string, name: string): Promise<boolean>;
}

export interface CommandRoutesOptions {
  /** How long a host whose agent reads its shard is known to (it stays so: agents do not downgrade). */
  shardedTtlMs?: number;
  /** How long any other answer is kept (an agent not started yet, or one being upgraded). */
  otherTtlMs?: number;
  now?: () => number;
}

export class CommandRoutes {
  private readonly known = new Map<string, { sharded: boolean; until: number }>();
  private readonly looking = new Map<string, Promise<boolean>>();
  private readonly now: () => number;

  constructor(
    private readonly lookup: ConsumerLookup,
    private readonly options: CommandRoutesOptions = {},
  ) {
    this.now = options.now ?? Date.now;
  }

  /** Whether the host's commands go to its shard's stream (otherwise to the unsharded one). */
  async sharded(host: string): Promise<boolean> {
    const known = this.known.get(host);
    if (known && known.until > this.now()) return known.sharded;
    let look = this.looking.get(host);
    if (!look) {
      look = this.look(host).finally(() => this.looking.delete(host));
      this.looking.set(host, look);
    }
    return look;
  }

  private async look(host: string): Promise<boolean> {
    const { computeCommands: shards, computeCommandsUnsharded: unsharded } = Streams;
    const onShard = await this.lookup.hasConsumer(shards.streamOf(host), shards.hostConsumer(host));
    const sharded = onShard || !(await this.lookup.hasConsumer(unsharded.name, unsharded.hostConsumer(host)));
    const ttl = onShard ? (this.options.shardedTtlMs ?? 600_000) : (this.options.otherTtlMs ?? 10_000);
    this.known.set(host, { sharded, until: this.now() + ttl });
    return sharded;
  }
}
