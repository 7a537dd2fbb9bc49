// Helpers for the compute-agent integration tests: a recorder of what the agent publishes on
// NATS, and a conductor stand-in that sends build/delete commands through JetStream.
import { type DescMessage, fromBinary, type MessageInitShape, type MessageShape } from "@bufbuild/protobuf";
import { ComputeAgentService } from "@stratus/contracts/computeagent/v1";
import {
  type BuildCommand,
  BuildCommandSchema,
  type BuildResult,
  BuildResultSchema,
  DeleteCommandSchema,
  type DeleteResult,
  DeleteResultSchema,
  type VifPlugged,
  VifPluggedSchema,
} from "@stratus/contracts/events/v1";
import {
  createLogger,
  EventBus,
  ensureStreams,
  Subjects,
  serviceClient,
  streamsOwnedBy,
} from "@stratus/runtime";
import type { TestNats } from "@stratus/runtime/testing";
import type { NatsConnection } from "nats";

export type AgentClient = ReturnType<typeof serviceClient<typeof ComputeAgentService>>;
export const agentClient = (url: string): AgentClient => serviceClient(ComputeAgentService, url);

export async function waitUntil<T>(
  what: string,
  probe: () => Promise<T | undefined> | T | undefined,
  timeoutMs = 30_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/**
 * Listens to the agent's results on core NATS (JetStream publishes reach core subscribers too) as
 * the `tools` role, and sends commands as the conductor, with the conductor's credential: it makes
 * the command and result streams as the conductor does at its start.
 */
export class Recorder {
  readonly results: BuildResult[] = [];
  readonly deleted: DeleteResult[] = [];
  readonly vifs: VifPlugged[] = [];
  private constructor(
    readonly nc: NatsConnection,
    readonly bus: EventBus,
  ) {}

  static async start(nats: TestNats): Promise<Recorder> {
    const nc = await nats.connect("tools");
    const conductor = await nats.connect("conductor");
    await ensureStreams(conductor, streamsOwnedBy("conductor"));
    const bus = new EventBus(conductor, createLogger("test", "silent"));
    const r = new Recorder(nc, bus);
    r.listen(Subjects.computeResult, BuildResultSchema, r.results);
    r.listen(Subjects.computeDeleted, DeleteResultSchema, r.deleted);
    r.listen(Subjects.vifPlugged, VifPluggedSchema, r.vifs);
    await nc.flush();
    return r;
  }

  private readonly waiters = new Set<() => void>();
  private readonly byBuild = new Map<string, BuildResult[]>();

  private listen<D extends DescMessage>(subject: string, schema: D, into: MessageShape<D>[]) {
    const sub = this.nc.subscribe(subject);
    void (async () => {
      for await (const m of sub) {
        const v = fromBinary(schema, m.data);
        into.push(v);
        if (schema === (BuildResultSchema as DescMessage)) {
          const r = v as unknown as BuildResult;
          const key = `${r.serverId}/${r.attempt}`;
          this.byBuild.set(key, [...(this.byBuild.get(key) ?? []), r]);
        }
        for (const w of this.waiters) w();
      }
    })();
  }

  /** Resolves with the first value probe finds, checking again on every message received. */
  private waitFor<T>(what: string, probe: () => T | undefined, timeoutMs: number): Promise<T> {
    const found = probe();
    if (found !== undefined) return Promise.resolve(found);
    return new Promise<T>((resolve, reject) => {
      const check = () => {
        const v = probe();
        if (v === undefined) return;
        this.waiters.delete(check);
        clearTimeout(timer);
        resolve(v);
      };
      const timer = setTimeout(() => {
        this.waiters.delete(check);
        reject(new Error(`timed out waiting for ${what}`));
      }, timeoutMs);
      this.waiters.add(check);
    });
  }

  /** Sends a build command the way the conductor does (JetStream, durable). */
  async build(cmd: MessageInitShape<typeof BuildCommandSchema> & { host: string }): Promise<void> {
    await this.bus.publishDurable(Subjects.computeBuild(cmd.host), BuildCommandSchema, {
      attempt: 1,
      ...cmd,
    });
  }

  async delete(serverId: string, host: string): Promise<void> {
    await this.bus.publishDurable(Subjects.computeDelete(host), DeleteCommandSchema, { serverId, host });
  }

  /** The n-th (1-based) build result for the server and attempt. */
  result(serverId: string, attempt = 1, nth = 1, timeoutMs = 30_000): Promise<BuildResult> {
    return this.waitFor(
      `build result ${nth} of ${serverId} attempt ${attempt}`,
      () => this.byBuild.get(`${serverId}/${attempt}`)?.[nth - 1],
      timeoutMs,
    );
  }

  deleteResult(serverId: string, timeoutMs = 30_000): Promise<DeleteResult> {
    return this.waitFor(
      `delete result of ${serverId}`,
      () => this.deleted.find((r) => r.serverId === serverId),
      timeoutMs,
    );
  }

  async close(): Promise<void> {
    await this.bus.close();
    await this.nc.drain().catch(() => this.nc.close());
  }
}

export type { BuildCommand };
