// A compute host that speaks the compute-agent's NATS protocol (BuildCommand in, BuildResult out)
// and honours the fake driver's metadata faults. Used for conductor tests that must control every
// answer (and before the compute-agent is available); the real agent is used where it runs.
import { BuildCommandSchema, BuildResultSchema, DeleteCommandSchema } from "@stratus/contracts/events/v1";
import { connectNats, createLogger, EventBus, Streams, Subjects } from "@stratus/runtime";

export interface StandInAgent {
  /** Build commands received, in order. */
  readonly commands: { serverId: string; host: string; attempt: number; portIds: string[] }[];
  /** Delete commands received, in order. */
  readonly deletes: { serverId: string; host: string }[];
  close(): Promise<void>;
}

export async function startStandInAgent(natsUrl: string, durable = "stand-in-agent"): Promise<StandInAgent> {
  const logger = createLogger("stand-in-agent", "warn");
  const bus = new EventBus(await connectNats({ url: natsUrl, name: durable, logger }), logger);
  const commands: StandInAgent["commands"] = [];
  const deletes: StandInAgent["deletes"] = [];
  await bus.consumeDurable({
    stream: Streams.computeCommands.name,
    durable,
    filterSubject: Subjects.computeBuild(">"),
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
  });
  await bus.consumeDurable({
    stream: Streams.computeCommands.name,
    durable: `${durable}-deletes`,
    filterSubject: Subjects.computeDelete(">"),
    schema: DeleteCommandSchema,
    handler: async (cmd) => {
      deletes.push({ serverId: cmd.serverId, host: cmd.host });
    },
  });
  return { commands, deletes, close: () => bus.close() };
}
