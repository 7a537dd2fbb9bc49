// Helpers for the network-adapter's integration tests.
import { type DescMessage, fromBinary, type MessageShape } from "@bufbuild/protobuf";
import { NetworkService } from "@stratus/contracts/network/v1";
import {
  defaultRoles,
  newRequestId,
  runWithContext,
  StratusError,
  serviceClient,
  userContext,
} from "@stratus/runtime";
import {
  createTempDatabase,
  type Mesh,
  type ServiceProcess,
  startMesh,
  startNats,
  startService,
} from "@stratus/runtime/testing";
import type { NatsConnection } from "nats";

export type NetworkClient = ReturnType<typeof serviceClient<typeof NetworkService>>;

/** The StratusError a call was refused with (fails the test when the call succeeds). */
export async function refusal(p: Promise<unknown>): Promise<StratusError> {
  try {
    await p;
  } catch (err) {
    if (err instanceof StratusError) return err;
    throw err;
  }
  throw new Error("expected the call to be refused");
}

/** Polls until check() returns without throwing (for state kept in step in the background). */
export async function eventually<T>(check: () => Promise<T>, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await check();
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, 200));
    }
  }
}

/** A tenant network with one IPv4 subnet. */
export async function tenantNetwork(
  net: NetworkClient,
  cidr: string,
  project = "p1",
): Promise<{ networkId: string; subnetId: string }> {
  const { network } = await net.createNetwork({ name: `net-${cidr}`, projectId: project });
  const { subnet } = await net.createSubnet({ networkId: network!.id, cidr, projectId: project });
  return { networkId: network!.id, subnetId: subnet!.id };
}

/** Runs a call as a non-admin user of a project (the headers the api would send). */
export const asProject = <T>(project: string, fn: () => Promise<T>) =>
  runWithContext(
    userContext({ requestId: newRequestId(), userId: "u", projectId: project, roles: defaultRoles(false) }),
    fn,
  );

/** Network-adapter processes sharing one temporary PostgreSQL database, with their own NATS. */
export interface SharedDatabaseAdapters {
  clients: NetworkClient[];
  urls: string[];
  databaseUrl: string;
  close(): Promise<void>;
}

/** `count` adapters on one new database (no scheduler: placement work is retried in the background). */
export async function adaptersOnPostgres(
  prefix: string,
  env: Record<string, string> = {},
  count = 2,
): Promise<SharedDatabaseAdapters> {
  const nats = await startNats();
  const db = await createTempDatabase(prefix);
  const all = {
    NATS_URL: nats.url,
    DATABASE_URL: db.url,
    LOG_LEVEL: "warn",
    SCHEDULER_URL: "http://127.0.0.1:1",
    ...env,
  };
  const adapters: ServiceProcess[] = await Promise.all(
    Array.from({ length: count }, () => startService("network-adapter", all)),
  );
  return {
    clients: adapters.map((a) => serviceClient(NetworkService, a.url)),
    urls: adapters.map((a) => a.url),
    databaseUrl: db.url,
    async close() {
      await Promise.all(adapters.map((a) => a.stop()));
      await nats.stop();
      await db.drop();
    },
  };
}

/** The NATS messages on `subject` (a pattern) from now on, as they arrive, on a connection of its own. */
export async function collectEvents(
  nc: NatsConnection,
  subject: string,
): Promise<{ events: { subject: string; data: Uint8Array }[]; close(): Promise<void> }> {
  const events: { subject: string; data: Uint8Array }[] = [];
  const sub = nc.subscribe(subject);
  void (async () => {
    for await (const m of sub) events.push({ subject: m.subject, data: m.data });
  })();
  return { events, close: () => nc.close() };
}

/** A mesh of a network-adapter (with a scheduler when asked), its client, and its events. */
export interface AdapterUnderTest {
  mesh: Mesh;
  net: NetworkClient;
  /** The NATS messages on the subject asked for, from the start on (empty when none was). */
  events: { subject: string; data: Uint8Array }[];
  close(): Promise<void>;
}

export async function startAdapter(
  opts: { events?: string; scheduler?: boolean } = {},
): Promise<AdapterUnderTest> {
  const mesh = await startMesh({
    services: opts.scheduler ? ["scheduler", "network-adapter"] : ["network-adapter"],
  });
  // An observer of the mesh's events (the one place these tests connect to NATS).
  const collected = opts.events
    ? await collectEvents(await mesh.nats.connect("tools"), opts.events)
    : undefined;
  return {
    mesh,
    net: serviceClient(NetworkService, mesh.url("network-adapter")),
    events: collected?.events ?? [],
    async close() {
      await collected?.close();
      await mesh.close();
    },
  };
}

/** The events published on `subject` so far, decoded. */
export function published<D extends DescMessage>(
  adapter: AdapterUnderTest,
  subject: string,
  schema: D,
): MessageShape<D>[] {
  return adapter.events.filter((e) => e.subject === subject).map((e) => fromBinary(schema, e.data));
}
