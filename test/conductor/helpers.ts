// Helpers for the conductor's integration tests: register compute hosts in placement the way the
// compute-agent does, wait for servers to settle, audit what a server holds.
import { randomUUID } from "node:crypto";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { ConductorService, type Server } from "@stratus/contracts/compute/v1";
import { PlacementService } from "@stratus/contracts/scheduler/v1/placement";
import { defaultRoles, runWithContext, StratusError, serviceClient, userContext } from "@stratus/runtime";

export type ConductorClient = ReturnType<typeof serviceClient<typeof ConductorService>>;
export type PlacementClient = ReturnType<typeof serviceClient<typeof PlacementService>>;

export function clients(conductorUrl: string, schedulerUrl: string) {
  return {
    conductor: serviceClient(ConductorService, conductorUrl),
    placement: serviceClient(PlacementService, schedulerUrl),
  };
}

/** Runs fn as a caller of the given project (what the api sends in headers). */
export function as<T>(project: string, fn: () => Promise<T>, user = "alice", isAdmin = false): Promise<T> {
  return runWithContext(userContext({ userId: user, projectId: project, roles: defaultRoles(isAdmin) }), fn);
}

export async function refusal(p: Promise<unknown>): Promise<StratusError> {
  try {
    await p;
  } catch (err) {
    if (err instanceof StratusError) return err;
    throw err;
  }
  throw new Error("expected the call to be refused");
}

/** Polls GetServer until its status is final (not BUILD) or the deadline passes. */
export async function waitSettled(
  conductor: ConductorClient,
  id: string,
  timeoutMs = 60_000,
): Promise<Server> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const s = (await conductor.getServer({ id, includeDeleted: true })).server!;
    if (s.status !== "BUILD" && s.taskState !== "deleting") return s;
    if (Date.now() > deadline)
      throw new Error(`server ${id} still ${s.status}/${s.taskState} after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

export async function waitAll(
  conductor: ConductorClient,
  ids: string[],
  timeoutMs = 120_000,
): Promise<Server[]> {
  return Promise.all(ids.map((id) => waitSettled(conductor, id, timeoutMs)));
}

/** Allocations placement holds for a consumer (server), by provider. */
export async function allocationsOf(placement: PlacementClient, serverId: string) {
  return (await placement.getAllocations({ consumerUuid: serverId })).allocations;
}

export async function until<T>(
  what: string,
  fn: () => Promise<T | undefined | false>,
  timeoutMs = 30_000,
  pollMs = 100,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, pollMs));
  }
}

/**
 * The servers whose build succeeded after `at`: they were still in BUILD then. A crash test takes
 * `at` once the killed process has exited (every write it made has a database timestamp before
 * that: a statement's now() is taken when it starts) and asserts some are, so that it fails when
 * its kill lands after every build had finished.
 */
export function activatedAfter(servers: Server[], at: Date): Server[] {
  return servers.filter((s) => s.status === "ACTIVE" && s.launchedAt && timestampDate(s.launchedAt) > at);
}

/** A compute node provider the way the compute-agent registers one: name = host, VCPU/MEMORY_MB/DISK_GB. */
export async function registerHost(
  placement: PlacementClient,
  host: string,
  sizes = { vcpu: 16, ramMb: 32768, diskGb: 500 },
  aggregates: string[] = [],
): Promise<string> {
  const uuid = randomUUID();
  await placement.ensureResourceProvider({ uuid, name: host });
  const gen = (
    await placement.setInventories({
      providerUuid: uuid,
      providerGeneration: 0n,
      inventories: [
        { resourceClass: "VCPU", total: BigInt(sizes.vcpu), allocationRatio: 1 },
        { resourceClass: "MEMORY_MB", total: BigInt(sizes.ramMb) },
        { resourceClass: "DISK_GB", total: BigInt(sizes.diskGb) },
      ],
    })
  ).providerGeneration;
  if (aggregates.length)
    await placement.setAggregates({
      providerUuid: uuid,
      providerGeneration: gen,
      aggregateUuids: aggregates,
    });
  return uuid;
}
