// A compute host that speaks the compute-agent's NATS protocol (BuildCommand in, BuildResult out)
// and honours the fake driver's metadata faults. Used for conductor tests that must control every
// answer (and before the compute-agent is available); the real agent is used where it runs.
import { BuildCommandSchema, BuildResultSchema, DeleteCommandSchema } from "@stratus/contracts/events/v1";
import { connectNats, createLogger, EventBus, readNkeySeedFile, Streams, Subjects } from "@stratus/runtime";
import type { TestNats } from "@stratus/runtime/testing";

export interface StandInAgent {
  /** Build commands received, in order. */
  readonly commands: { serverId: string; host: string; attempt: number; portIds: string[] }[];
  /** Delete commands received, in order. */
  readonly deletes: { serverId: string; host: string }[];
  close(): Promise<void>;
}

/** Connects with the compute agents' credential: it may do what an agent does, nothing more. */
export async function startStandInAgent(nats: TestNats, durable = "stand-in-agent"): Promise<StandInAgent> {
  const logger = createLogger("stand-in-agent", "warn");
  const seed = readNkeySeedFile(nats.seedFile("compute-agent"));
  const nc = await connectNats({ url: nats.url, name: durable, role: "compute-agent", seed, logger });
  const bus = new EventBus(nc, logger);
  const commands: StandInAgent["commands"] = [];
  const deletes: StandInAgent["deletes"] = [];
  // Every host's commands: one consumer per shard's stream and command (hosts of the agent's own
  // would be one consumer each).
  const shards = Streams.computeCommands.shards.map((s) => ({
    stream: s.name,
    commands: (command: string) => s.subjects[0]!.replace(/>$/, `*.${command}`),
  }));
  const builds = shards.map((shard) =>
    bus.consumeDurable({
      stream: shard.stream,
      durable: `${durable}-${shard.stream}`,
      filterSubject: shard.commands("build"),
      schema: BuildCommandSchema,
      concurrency: 16,
      handler: async (cmd) => {
        commands.push({
          serverId: cmd.serverId,
          host: cmd.host,
          attempt: cmd.attempt,
          portIds: [...cmd.portIds],
        });
        const failN = Number(cmd.metadata.fake_fail_attempts ?? 0);
        const fail = cmd.metadata.fake_fail_spawn === "always" || cmd.attempt <= failN;
        await bus.publishDurable(Subjects.computeResult, BuildResultSchema, {
          serverId: cmd.serverId,
          host: cmd.host,
          attempt: cmd.attempt,
          success: !fail,
          error: fail ? `fake driver: spawn failed on ${cmd.host} (attempt ${cmd.attempt})` : "",
          retryable: fail,
          powerState: fail ? 0 : 1,
        });
      },
    }),
  );
  const removals = shards.map((shard) =>
    bus.consumeDurable({
      stream: shard.stream,
      durable: `${durable}-deletes-${shard.stream}`,
      filterSubject: shard.commands("delete"),
      schema: DeleteCommandSchema,
      handler: async (cmd) => {
        deletes.push({ serverId: cmd.serverId, host: cmd.host });
      },
    }),
  );
  await Promise.all([...builds, ...removals]);
  return { commands, deletes, close: () => bus.close() };
}
