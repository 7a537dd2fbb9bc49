// Consumers' allocations (Placement's allocation and usage: reference §7.5): what each consumer
// holds on which providers, replaced as a whole under the consumer's generation, and the usages
// they add up to. A write locks every provider involved in uuid order (two writers never
// deadlock) and checks capacity under those locks, so no provider is ever over-committed, however
// many schedulers write at once.
import { conflict, type Database, invalidInput, type Queryable } from "@stratus/runtime";
import { assertAllocatable, type InventoryRow, toInventory } from "./inventory.js";
import { assertResourceClass, assertUuid } from "./names.js";
import { type PlacementWrite, providerIdOf } from "./providers.js";

export interface ProviderAllocation {
  providerUuid: string;
  resources: Record<string, number>;
}

/** One class's amount on one provider: allocations flattened. */
export interface ClassAmount {
  providerUuid: string;
  resourceClass: string;
  amount: number;
}

export interface ConsumerAllocations {
  allocations: (ProviderAllocation & { providerGeneration: number })[];
  projectId: string;
  userId: string;
  /** 0 when the consumer holds nothing. */
  consumerGeneration: number;
}

/** A consumer with what it holds (listConsumers). */
export interface HeldByConsumer {
  uuid: string;
  projectId: string;
  userId: string;
  consumerGeneration: number;
  updatedAt: Date;
  allocations: ProviderAllocation[];
}

export interface PutAllocationsRequest {
  consumerUuid: string;
  allocations: ProviderAllocation[];
  projectId: string;
  userId: string;
  /** The generation the caller last saw (0: new consumer), or "any" to replace whatever is held. */
  expectedGeneration: number | "any";
}

export interface AllocationsWritten {
  consumerGeneration: number;
  /** Providers whose allocations changed (released or claimed). */
  providerUuids: string[];
  /** What the consumer held before the write. */
  previous: ProviderAllocation[];
}

export class Allocations {
  constructor(
    private readonly db: Database,
    private readonly writing: PlacementWrite,
  ) {}

  /** Usages of one provider (every class it has inventory of) or of a project (and user). */
  async usages(query: {
    providerUuid?: string;
    projectId?: string;
    userId?: string;
  }): Promise<Record<string, number>> {
    let rows: { resource_class: string; used: string }[];
    if (query.providerUuid) {
      const p = await providerIdOf(this.db, query.providerUuid);
      rows = await this.db.query("SELECT resource_class, used FROM inventories WHERE provider_id = $1", [
        p.id,
      ]);
    } else if (query.projectId) {
      rows = await this.db.query(
        `SELECT a.resource_class, sum(a.used) AS used FROM allocations a JOIN consumers c ON c.uuid = a.consumer_uuid
         WHERE c.project_id = $1 AND ($2 = '' OR c.user_id = $2) GROUP BY a.resource_class`,
        [query.projectId, query.userId ?? ""],
      );
    } else {
      throw invalidInput("GetUsages needs a provider_uuid or a project_id");
    }
    return Object.fromEntries(rows.map((r) => [r.resource_class, Number(r.used)]));
  }

  /** Every consumer that holds allocations, with them (the audit's read: one statement, one snapshot). */
  async listConsumers(): Promise<HeldByConsumer[]> {
    const rows = await this.db.query<{
      consumer: string;
      project_id: string;
      user_id: string;
      generation: string;
      updated_at: Date | string;
      provider: string;
      resource_class: string;
      used: string;
    }>(
      `SELECT c.uuid::text AS consumer, c.project_id, c.user_id, c.generation, c.updated_at,
         p.uuid::text AS provider, a.resource_class, a.used
       FROM allocations a JOIN consumers c ON c.uuid = a.consumer_uuid JOIN resource_providers p ON p.id = a.provider_id
       ORDER BY c.uuid, p.uuid, a.resource_class`,
    );
    const byConsumer = new Map<string, HeldByConsumer>();
    for (const r of rows) {
      let c = byConsumer.get(r.consumer);
      if (!c) {
        c = {
          uuid: r.consumer,
          projectId: r.project_id,
          userId: r.user_id,
          consumerGeneration: Number(r.generation),
          updatedAt: new Date(r.updated_at),
          allocations: [],
        };
        byConsumer.set(r.consumer, c);
      }
      let a = c.allocations.find((x) => x.providerUuid === r.provider);
      if (!a) {
        a = { providerUuid: r.provider, resources: {} };
        c.allocations.push(a);
      }
      a.resources[r.resource_class] = Number(r.used);
    }
    return [...byConsumer.values()];
  }

  async get(consumerUuid: string): Promise<ConsumerAllocations> {
    const consumer = assertUuid(consumerUuid, "consumer uuid");
    return this.db.transaction(async (tx) => {
      const [c] = await tx.query<{ project_id: string; user_id: string; generation: string }>(
        "SELECT project_id, user_id, generation FROM consumers WHERE uuid = $1",
        [consumer],
      );
      if (!c || Number(c.generation) === 0) {
        return { allocations: [], projectId: "", userId: "", consumerGeneration: 0 };
      }
      const rows = await tx.query<{ uuid: string; generation: string; resource_class: string; used: string }>(
        `SELECT p.uuid::text AS uuid, p.generation, a.resource_class, a.used FROM allocations a
         JOIN resource_providers p ON p.id = a.provider_id WHERE a.consumer_uuid = $1 ORDER BY p.uuid, a.resource_class`,
        [consumer],
      );
      const byProvider = new Map<string, ProviderAllocation & { providerGeneration: number }>();
      for (const r of rows) {
        let entry = byProvider.get(r.uuid);
        if (!entry) {
          entry = { providerUuid: r.uuid, providerGeneration: Number(r.generation), resources: {} };
          byProvider.set(r.uuid, entry);
        }
        entry.resources[r.resource_class] = Number(r.used);
      }
      return {
        allocations: [...byProvider.values()],
        projectId: c.project_id,
        userId: c.user_id,
        consumerGeneration: Number(c.generation),
      };
    });
  }

  /**
   * Replaces all of a consumer's allocations atomically (Placement's PUT /allocations/{consumer}).
   * An empty list deletes them. Capacity and unit constraints are checked under the lock of every
   * provider involved; a consumer generation mismatch is a conflict.
   */
  async put(req: PutAllocationsRequest): Promise<AllocationsWritten> {
    const consumer = assertUuid(req.consumerUuid, "consumer uuid");
    const wanted = mergeAllocations(req.allocations);
    if (wanted.length && !req.projectId) throw invalidInput("project_id is required with allocations");
    return this.writing((tx) => this.write(tx, consumer, wanted, req));
  }

  /** DELETE /allocations/{consumer}: unconditional, idempotent. */
  async delete(consumerUuid: string): Promise<AllocationsWritten> {
    return this.put({
      consumerUuid,
      allocations: [],
      projectId: "",
      userId: "",
      expectedGeneration: "any",
    });
  }

  private async write(
    tx: Queryable,
    consumer: string,
    wanted: ClassAmount[],
    req: PutAllocationsRequest,
  ): Promise<AllocationsWritten> {
    // The consumer row is the lock that serialises writers of one consumer; a placeholder at
    // generation 0 stands for "no allocations yet".
    await tx.query(
      "INSERT INTO consumers (uuid, project_id, user_id, generation) VALUES ($1, $2, $3, 0) ON CONFLICT DO NOTHING",
      [consumer, req.projectId, req.userId],
    );
    const [c] = await tx.query<{ generation: string; project_id: string; user_id: string }>(
      "SELECT generation, project_id, user_id FROM consumers WHERE uuid = $1 FOR UPDATE",
      [consumer],
    );
    const generation = Number(c!.generation);
    if (req.expectedGeneration !== "any" && req.expectedGeneration !== generation) {
      throw conflict(
        `consumer generation conflict - expected ${req.expectedGeneration} but got ${generation} for consumer ${consumer}. Re-read its allocations and retry.`,
      );
    }
    const wantedUuids = [...new Set(wanted.map((w) => w.providerUuid))];
    // Lock every provider involved (held and wanted) in uuid order: two writers never deadlock.
    const providers = await tx.query<{ id: number; uuid: string }>(
      // (A UNION of the two key lookups: an OR of them was planned as a scan of every provider.)
      `SELECT id, uuid::text AS uuid FROM resource_providers
       WHERE id IN (SELECT id FROM resource_providers WHERE uuid = ANY($1::uuid[])
         UNION SELECT provider_id FROM allocations WHERE consumer_uuid = $2)
       ORDER BY uuid FOR UPDATE`,
      [wantedUuids, consumer],
    );
    const idOf = new Map(providers.map((p) => [p.uuid, p.id]));
    const unknown = wantedUuids.filter((u) => !idOf.has(u));
    if (unknown.length) {
      throw invalidInput(`Allocation for resource provider ${unknown[0]} that does not exist.`);
    }
    const previous = await tx.query<{
      uuid: string;
      provider_id: number;
      resource_class: string;
      used: string;
    }>(
      `WITH d AS (DELETE FROM allocations WHERE consumer_uuid = $1 RETURNING provider_id, resource_class, used),
       u AS (UPDATE inventories i SET used = i.used - d.used FROM d
             WHERE i.provider_id = d.provider_id AND i.resource_class = d.resource_class RETURNING i.provider_id)
       SELECT p.uuid::text AS uuid, d.provider_id, d.resource_class, d.used FROM d JOIN resource_providers p ON p.id = d.provider_id`,
      [consumer],
    );
    if (wanted.length) {
      const ids = wanted.map((w) => idOf.get(w.providerUuid)!);
      const classes = wanted.map((w) => w.resourceClass);
      const amounts = wanted.map((w) => w.amount);
      // The CTE above ran first; its updates are visible to later statements of the transaction.
      const invs = await tx.query<InventoryRow & { provider_id: number }>(
        `SELECT i.* FROM inventories i JOIN unnest($1::int[], $2::text[]) AS w(provider_id, resource_class)
         ON i.provider_id = w.provider_id AND i.resource_class = w.resource_class`,
        [ids, classes],
      );
      const invOf = new Map(invs.map((r) => [`${r.provider_id}/${r.resource_class}`, r]));
      for (const w of wanted) {
        const row = invOf.get(`${idOf.get(w.providerUuid)}/${w.resourceClass}`);
        if (!row) {
          throw conflict(
            `Unable to allocate inventory: resource provider ${w.providerUuid} has no inventory of ${w.resourceClass}.`,
          );
        }
        assertAllocatable(w.providerUuid, toInventory(row), Number(row.used), w.amount);
      }
      await tx.query(
        `UPDATE inventories i SET used = i.used + w.amount FROM unnest($1::int[], $2::text[], $3::bigint[]) AS w(provider_id, resource_class, amount)
         WHERE i.provider_id = w.provider_id AND i.resource_class = w.resource_class`,
        [ids, classes, amounts],
      );
      await tx.query(
        `INSERT INTO allocations (consumer_uuid, provider_id, resource_class, used)
         SELECT $1, w.provider_id, w.resource_class, w.amount FROM unnest($2::int[], $3::text[], $4::bigint[]) AS w(provider_id, resource_class, amount)`,
        [consumer, ids, classes, amounts],
      );
    }
    const touched = [
      ...new Set([...previous.map((p) => p.provider_id), ...wanted.map((w) => idOf.get(w.providerUuid)!)]),
    ];
    if (touched.length) {
      await tx.query("UPDATE resource_providers SET generation = generation + 1 WHERE id = ANY($1::int[])", [
        touched,
      ]);
    }
    let consumerGeneration = 0;
    if (wanted.length) {
      const [row] = await tx.query<{ generation: string }>(
        "UPDATE consumers SET generation = generation + 1, project_id = $2, user_id = $3, updated_at = now() WHERE uuid = $1 RETURNING generation",
        [consumer, req.projectId, req.userId],
      );
      consumerGeneration = Number(row!.generation);
    } else {
      await tx.query("DELETE FROM consumers WHERE uuid = $1", [consumer]);
    }
    const uuidOfId = new Map(providers.map((p) => [p.id, p.uuid]));
    return {
      consumerGeneration,
      providerUuids: touched.map((id) => uuidOfId.get(id)!).sort(),
      previous: groupAllocations(
        previous.map((p) => ({
          providerUuid: p.uuid,
          resourceClass: p.resource_class,
          amount: Number(p.used),
        })),
      ),
    };
  }
}

/** Validates and flattens allocations, summing repeated (provider, class) pairs. */
export function mergeAllocations(allocations: ProviderAllocation[]): ClassAmount[] {
  const sums = new Map<string, ClassAmount>();
  for (const a of allocations) {
    const providerUuid = assertUuid(a.providerUuid, "allocation provider uuid");
    for (const [rc, amount] of Object.entries(a.resources)) {
      assertResourceClass(rc);
      if (!Number.isSafeInteger(amount) || amount < 1) {
        throw invalidInput(
          `allocation of ${rc} on ${providerUuid} must be a positive integer, got ${amount}`,
        );
      }
      const key = `${providerUuid}/${rc}`;
      const entry = sums.get(key);
      if (entry) entry.amount += amount;
      else sums.set(key, { providerUuid, resourceClass: rc, amount });
    }
  }
  return [...sums.values()];
}

export function groupAllocations(flat: ClassAmount[]): ProviderAllocation[] {
  const byProvider = new Map<string, ProviderAllocation>();
  for (const f of flat) {
    let entry = byProvider.get(f.providerUuid);
    if (!entry) {
      entry = { providerUuid: f.providerUuid, resources: {} };
      byProvider.set(f.providerUuid, entry);
    }
    entry.resources[f.resourceClass] = (entry.resources[f.resourceClass] ?? 0) + f.amount;
  }
  return [...byProvider.values()].sort((a, b) => (a.providerUuid < b.providerUuid ? -1 : 1));
}
