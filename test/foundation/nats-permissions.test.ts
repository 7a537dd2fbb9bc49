// NATS closed (issue 21): a real nats-server with the configuration the permission table generates
// (the one `npm start` and every test mesh run with) refuses anonymous and forged clients, and
// refuses each role what is not its own: forged commands, results and events never reach a
// subscriber nor a stream, and nobody but the owner touches a stream.
import { type DescMessage, fromBinary, type MessageInitShape, type MessageShape } from "@bufbuild/protobuf";
import {
  BuildCommandSchema,
  BuildResultSchema,
  DeleteCommandSchema,
  PortChange,
  PortChangedSchema,
  ServerStateChangedSchema,
} from "@stratus/contracts/events/v1";
import {
  createLogger,
  EventBus,
  ensureStreams,
  type NatsRole,
  readNkeySeedFile,
  Streams,
  Subjects,
  streamsOwnedBy,
} from "@stratus/runtime";
import { startNats, type TestNats } from "@stratus/runtime/testing";
import {
  connect,
  ErrorCode,
  Events,
  type Msg,
  type NatsConnection,
  NatsError,
  nkeyAuthenticator,
} from "nats";
import { createUser, encode, fromSeed } from "nkeys.js";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const logger = createLogger("test", "silent");
/** The state subject of one project (the events of every test below are of it). */
const STATE = Subjects.serverState("p-test");

let nats: TestNats;
let observer: NatsConnection;
const observed: Msg[] = [];
const buses: Partial<Record<NatsRole, EventBus>> = {};

/** A connection of the role, behind the runtime's typed bus as services use it. */
async function as(role: NatsRole): Promise<EventBus> {
  buses[role] ??= new EventBus(await nats.connect(role), logger);
  return buses[role];
}

/** What the `tools` observer received on a subject, decoded. */
function received<D extends DescMessage>(subject: string, schema: D): MessageShape<D>[] {
  return observed.filter((m) => m.subject === subject).map((m) => fromBinary(schema, m.data));
}

async function until(what: string, probe: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!probe()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/**
 * Publishes on core NATS as the service would, and resolves once the server refused it
 * (`-ERR 'Permissions Violation for Publish to …'`, which nats.js reports on the connection's status).
 */
async function refusedPublish<D extends DescMessage>(
  bus: EventBus,
  subject: string,
  schema: D,
  value: MessageInitShape<D>,
): Promise<void> {
  const refusal = (async () => {
    for await (const s of bus.nc.status()) {
      const denied = s.permissionContext;
      if (s.type === Events.Error && denied?.operation === "publish" && denied.subject === subject)
        return s.data;
    }
  })();
  bus.publish(subject, schema, value);
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<string>((resolve) => {
    timer = setTimeout(() => resolve("no refusal within 5 s"), 5000);
  });
  const outcome = await Promise.race([refusal, timeout]);
  clearTimeout(timer);
  expect(outcome, `publish to ${subject}`).toBe(ErrorCode.PermissionsViolation);
}

async function streamMessages(stream: string): Promise<number> {
  const jsm = await (await as("conductor")).nc.jetstreamManager();
  return (await jsm.streams.info(stream)).state.messages;
}

const isPermissionViolation = (err: unknown) =>
  err instanceof NatsError && err.code === ErrorCode.PermissionsViolation;

beforeAll(async () => {
  nats = await startNats();
  observer = await nats.connect("tools");
  const sub = observer.subscribe("stratus.>");
  void (async () => {
    for await (const m of sub) observed.push(m);
  })();
  await observer.flush();
  // The streams exist as once the conductor has started.
  await ensureStreams((await as("conductor")).nc, streamsOwnedBy("conductor"));
});

afterAll(async () => {
  for (const bus of Object.values(buses)) await bus.close();
  await observer?.close();
  await nats?.stop();
});

describe("NATS credentials", () => {
  it("refuses an anonymous client", async () => {
    await expect(connect({ servers: nats.url, reconnect: false })).rejects.toMatchObject({
      code: ErrorCode.AuthorizationViolation,
    });
  });

  it("refuses a key it does not know", async () => {
    const stranger = createUser().getSeed();
    await expect(
      connect({ servers: nats.url, reconnect: false, authenticator: nkeyAuthenticator(stranger) }),
    ).rejects.toMatchObject({ code: ErrorCode.AuthorizationViolation });
  });

  it("refuses a client that names the compute agent's key without its seed (a wrong password)", async () => {
    const agentKey = fromSeed(readNkeySeedFile(nats.seedFile("compute-agent"))).getPublicKey();
    const another = createUser();
    await expect(
      connect({
        servers: nats.url,
        reconnect: false,
        authenticator: (nonce) => ({
          nkey: agentKey,
          sig: encode(another.sign(new TextEncoder().encode(nonce ?? ""))),
        }),
      }),
    ).rejects.toMatchObject({ code: ErrorCode.AuthorizationViolation });
    // The same key with its own seed gets in.
    const agent = await nats.connect("compute-agent");
    await agent.close();
  });
});

describe("NATS permissions per role", () => {
  it("a compute agent cannot send a build command, durable or not", async () => {
    const agent = await as("compute-agent");
    const command = { serverId: "forged-build", host: "rack1-1", attempt: 1 };
    await expect(
      agent.publishDurable(Subjects.computeBuild("rack1-1"), BuildCommandSchema, command),
    ).rejects.toSatisfy(isPermissionViolation);
    await refusedPublish(agent, Subjects.computeBuild("rack1-1"), BuildCommandSchema, command);

    // The conductor's command goes through: it, and only it, reached the observer and the stream.
    const conductor = await as("conductor");
    await conductor.publishDurable(Subjects.computeBuild("rack1-1"), BuildCommandSchema, {
      ...command,
      serverId: "real-build",
    });
    await until(
      "the real command",
      () => received(Subjects.computeBuild("rack1-1"), BuildCommandSchema).length > 0,
    );
    expect(received(Subjects.computeBuild("rack1-1"), BuildCommandSchema).map((c) => c.serverId)).toEqual([
      "real-build",
    ]);
    expect(await streamMessages(Streams.computeCommands.streamOf("rack1-1"))).toBe(1);
  });

  it("a compute agent cannot publish a server event nor a port event", async () => {
    const agent = await as("compute-agent");
    await refusedPublish(agent, STATE, ServerStateChangedSchema, {
      serverId: "forged-state",
      status: "ACTIVE",
    });
    await refusedPublish(agent, Subjects.portBound, PortChangedSchema, {
      change: PortChange.BOUND,
      portId: "forged-port",
    });

    (await as("conductor")).publish(STATE, ServerStateChangedSchema, {
      serverId: "real-state",
      status: "ACTIVE",
    });
    (await as("network-adapter")).publish(Subjects.portBound, PortChangedSchema, {
      change: PortChange.BOUND,
      portId: "real-port",
    });
    await until("the owners' events", () => received(Subjects.portBound, PortChangedSchema).length > 0);
    await until("the owners' events", () => received(STATE, ServerStateChangedSchema).length > 0);
    expect(received(STATE, ServerStateChangedSchema).map((e) => e.serverId)).not.toContain("forged-state");
    expect(received(Subjects.portBound, PortChangedSchema).map((e) => e.portId)).toEqual(["real-port"]);
  });

  it("a compute agent can neither create nor delete a stream", async () => {
    await (await as("conductor")).publishDurable(Subjects.computeDelete("rack1-1"), DeleteCommandSchema, {
      serverId: "held-by-the-stream",
    });
    const commands = Streams.computeCommands.streamOf("rack1-1");
    const held = await streamMessages(commands);
    const jsm = await (await as("compute-agent")).nc.jetstreamManager();
    await expect(jsm.streams.add({ name: "FORGED", subjects: ["stratus.server.>"] })).rejects.toSatisfy(
      isPermissionViolation,
    );
    await expect(jsm.streams.delete(commands)).rejects.toSatisfy(isPermissionViolation);
    await expect(jsm.streams.purge(commands)).rejects.toSatisfy(isPermissionViolation);
    // The command stream is still there, with what it held.
    expect(await streamMessages(commands)).toBe(held);
  });

  it("the api cannot publish a build result", async () => {
    const api = await as("api");
    const result = { serverId: "forged-result", host: "rack1-1", attempt: 1, success: true };
    const before = await streamMessages(Streams.computeResults.name);
    await expect(api.publishDurable(Subjects.computeResult, BuildResultSchema, result)).rejects.toSatisfy(
      isPermissionViolation,
    );
    await refusedPublish(api, Subjects.computeResult, BuildResultSchema, result);

    await (await as("compute-agent")).publishDurable(Subjects.computeResult, BuildResultSchema, {
      ...result,
      serverId: "real-result",
    });
    await until("the agent's result", () => received(Subjects.computeResult, BuildResultSchema).length > 0);
    expect(received(Subjects.computeResult, BuildResultSchema).map((r) => r.serverId)).toEqual([
      "real-result",
    ]);
    expect(await streamMessages(Streams.computeResults.name)).toBe(before + 1);
  });

  it("the network-adapter cannot publish a server's state", async () => {
    const adapter = await as("network-adapter");
    await refusedPublish(adapter, STATE, ServerStateChangedSchema, {
      serverId: "forged-by-adapter",
      status: "ERROR",
    });
    (await as("conductor")).publish(STATE, ServerStateChangedSchema, {
      serverId: "real-after-adapter",
      status: "ACTIVE",
    });
    await until("the conductor's event", () =>
      received(STATE, ServerStateChangedSchema).some((e) => e.serverId === "real-after-adapter"),
    );
    expect(received(STATE, ServerStateChangedSchema).map((e) => e.serverId)).not.toContain(
      "forged-by-adapter",
    );
  });
});

describe("NATS streams and their owner", () => {
  it("a compute agent's consumer waits until the conductor has made the command stream", async () => {
    const fresh = await startNats();
    const agentLog: string[] = [];
    const agentLogger = pino({ level: "info" }, { write: (line: string) => void agentLog.push(line) });
    const agent = new EventBus(await fresh.connect("compute-agent"), agentLogger);
    const conductor = new EventBus(await fresh.connect("conductor"), logger);
    try {
      const builds: string[] = [];
      const consuming = agent.consumeDurable({
        stream: Streams.computeCommands.streamOf("rack1-1"),
        durable: "waiting-agent",
        filterSubject: ">",
        schema: BuildCommandSchema,
        handler: async (cmd) => {
          builds.push(cmd.serverId);
        },
      });
      // The agent may not make the stream: it waits for its owner, and says so.
      await until("the agent to wait for the stream", () =>
        agentLog.some((line) => line.includes("waiting for the stream's owner")),
      );
      await ensureStreams(conductor.nc, streamsOwnedBy("conductor"));
      await consuming;
      await conductor.publishDurable(Subjects.computeBuild("rack1-1"), BuildCommandSchema, {
        serverId: "after-wait",
      });
      await until("the command to reach the agent", () => builds.includes("after-wait"));
    } finally {
      await agent.close();
      await conductor.close();
      await fresh.stop();
    }
  });
});
