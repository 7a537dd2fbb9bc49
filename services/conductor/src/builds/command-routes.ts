// Which command stream carries a host's commands: its shard's stream (Streams.computeCommands),
// unless the host's agent is of an earlier version that reads only the unsharded stream
// (Streams.computeCommandsUnsharded). Without that stream every host goes to its shard, asked
// once per TTL for all hosts (a new cloud, or an upgrade finished). With it, the agent's durable
// consumers say which: a host goes to the unsharded stream only while it has a consumer there and
// none on its shard's stream. An agent of this version makes both where the unsharded stream
// exists, so a route that is late to change (cached, or decided by a conductor of the earlier
// version) still reaches it.
import { Streams } from "@stratus/runtime";

/** Whether a stream and a durable consumer exist (EventBus.hasStream, hasConsumer). */
export interface ConsumerLookup {
  hasStream(stream: string): Promise<boolean>;
  hasConsumer(stream: string, name: string): Promise<boolean>;
}

export interface CommandRoutesOptions {
  /** How long a host whose agent reads its shard is known to (it stays so: agents do not downgrade). */
  shardedTtlMs?: number;
  /**
   * How long any other answer is kept (an agent not started yet, or one being upgraded), and
   * whether the unsharded stream exists.
   */
  otherTtlMs?: number;
  now?: () => number;
}

export class CommandRoutes {
  private readonly known = new Map<string, { sharded: boolean; until: number }>();
  private readonly looking = new Map<string, Promise<boolean>>();
  /** Whether the unsharded stream exists, until when that answer is kept. */
  private unsharded: { exists: boolean; until: number } | undefined;
  private lookingForStream: Promise<boolean> | undefined;
  private readonly now: () => number;

  constructor(
    private readonly lookup: ConsumerLookup,
    private readonly options: CommandRoutesOptions = {},
  ) {
    this.now = options.now ?? Date.now;
  }

  /** Whether the host's commands go to its shard's stream (otherwise to the unsharded one). */
  async sharded(host: string): Promise<boolean> {
    if (!(await this.unshardedExists())) return true;
    const known = this.known.get(host);
    if (known && known.until > this.now()) return known.sharded;
    let look = this.looking.get(host);
    if (!look) {
      // Concurrent commands of the host share one lookup.
      look = this.look(host).finally(() => this.looking.delete(host));
      this.looking.set(host, look);
    }
    return look;
  }

  private unshardedExists(): boolean | Promise<boolean> {
    if (this.unsharded && this.unsharded.until > this.now()) return this.unsharded.exists;
    this.lookingForStream ??= this.lookup
      .hasStream(Streams.computeCommandsUnsharded.name)
      .then((exists) => {
        this.unsharded = { exists, until: this.now() + (this.options.otherTtlMs ?? 10_000) };
        return exists;
      })
      .finally(() => {
        this.lookingForStream = undefined;
      });
    return this.lookingForStream;
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
