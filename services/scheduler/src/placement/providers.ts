// Resource providers (Placement's resource_provider: reference §7.1-§7.4): the providers of the
// placement model, their trees, and what each one has: inventories, aggregates and traits. Every
// change to what a provider has is guarded by the provider's generation (compare-and-swap under
// the provider's row lock), so two writers never both apply a change made against one reading.
import { randomUUID } from "node:crypto";
import { conflict, type Database, invalidInput, notFound, type Queryable } from "@stratus/runtime";
import { cols } from "./columns.js";
import {
  capacityOf,
  type InventoryInput,
  type InventoryRecord,
  type InventoryRow,
  normalizeInventory,
  toInventory,
} from "./inventory.js";
import { assertResourceClass, assertTrait, assertUuid, SHARING_TRAIT } from "./names.js";

export interface Provider {
  uuid: string;
  name: string;
  generation: number;
  parentUuid: string;
  rootUuid: string;
}

export interface ProviderFilter {
  name?: string;
  /** AND of any-of lists. */
  memberOf?: string[][];
  requiredTraits?: string[];
  inTree?: string;
  /** Providers with this much free of each class. */
  resources?: Record<string, number>;
}

const PROVIDER_COLUMNS = `p.uuid::text AS uuid, p.name, p.generation, pp.uuid::text AS parent_uuid, rp.uuid::text AS root_uuid`;
const PROVIDER_FROM = `resource_providers p
  LEFT JOIN resource_providers pp ON pp.id = p.parent_id
  JOIN resource_providers rp ON rp.id = p.root_id`;

interface ProviderRow {
  uuid: string;
  name: string;
  generation: string | number;
  parent_uuid: string | null;
  root_uuid: string;
  [k: string]: unknown;
}

function toProvider(r: ProviderRow): Provider {
  return {
    uuid: r.uuid,
    name: r.name,
    generation: Number(r.generation),
    parentUuid: r.parent_uuid ?? "",
    rootUuid: r.root_uuid,
  };
}

function requireName(name: string): string {
  const trimmed = name.trim();
  if (!trimmed || trimmed.length > 200) throw invalidInput("provider name must be 1-200 characters");
  return trimmed;
}

/** Runs one placement write in a transaction and counts it (Placement.version). */
export type PlacementWrite = <T>(fn: (tx: Queryable) => Promise<T>) => Promise<T>;

export class ResourceProviders {
  constructor(
    private readonly db: Database,
    private readonly writing: PlacementWrite,
  ) {}

  async create(input: { uuid?: string; name: string; parentUuid?: string }): Promise<Provider> {
    const uuid = input.uuid ? assertUuid(input.uuid, "provider uuid") : randomUUID();
    const name = requireName(input.name);
    return this.writing(async (tx) => {
      const inserted = await this.insert(tx, uuid, name, input.parentUuid);
      if (!inserted) {
        const [byUuid] = await tx.query("SELECT 1 FROM resource_providers WHERE uuid = $1", [uuid]);
        throw conflict(
          byUuid
            ? `Conflicting resource provider uuid: ${uuid} already exists.`
            : `Conflicting resource provider name: ${name} already exists.`,
        );
      }
      return inserted;
    });
  }

  /** Creates the provider unless one with this uuid exists; safe with concurrent creators. */
  async ensure(input: {
    uuid: string;
    name: string;
    parentUuid?: string;
  }): Promise<{ provider: Provider; created: boolean }> {
    const uuid = assertUuid(input.uuid, "provider uuid");
    const name = requireName(input.name);
    const existing = await this.find(this.db, uuid);
    if (existing) return { provider: existing, created: false };
    return this.writing(async (tx) => {
      const inserted = await this.insert(tx, uuid, name, input.parentUuid);
      if (inserted) return { provider: inserted, created: true };
      const winner = await this.find(tx, uuid);
      if (winner) return { provider: winner, created: false };
      throw conflict(`Conflicting resource provider name: ${name} already exists with another uuid.`);
    });
  }

  /** Inserts a provider; undefined when the uuid or name is taken (ON CONFLICT DO NOTHING). */
  private async insert(
    tx: Queryable,
    uuid: string,
    name: string,
    parentUuid: string | undefined,
  ): Promise<Provider | undefined> {
    let parentId: number | null = null;
    let rootId: number | null = null;
    if (parentUuid) {
      const [parent] = await tx.query<{ id: number; root_id: number }>(
        "SELECT id, root_id FROM resource_providers WHERE uuid = $1",
        [assertUuid(parentUuid, "parent provider uuid")],
      );
      if (!parent) throw invalidInput(`parent provider ${parentUuid} does not exist`);
      parentId = parent.id;
      rootId = parent.root_id;
    }
    const rows = await tx.query<{ id: number }>(
      `WITH n AS (SELECT nextval(pg_get_serial_sequence('resource_providers', 'id'))::int AS id)
       INSERT INTO resource_providers (id, uuid, name, parent_id, root_id)
       SELECT n.id, $1, $2, $3, COALESCE($4, n.id) FROM n
       ON CONFLICT DO NOTHING RETURNING id`,
      [uuid, name, parentId, rootId],
    );
    if (!rows.length) return undefined;
    return this.find(tx, uuid);
  }

  private async find(q: Queryable, uuid: string): Promise<Provider | undefined> {
    const [row] = await q.query<ProviderRow>(
      `SELECT ${PROVIDER_COLUMNS} FROM ${PROVIDER_FROM} WHERE p.uuid = $1`,
      [uuid],
    );
    return row ? toProvider(row) : undefined;
  }

  async get(uuid: string): Promise<Provider> {
    const provider = await this.find(this.db, assertUuid(uuid, "provider uuid"));
    if (!provider) throw notFound(`No resource provider with uuid ${uuid} found`);
    return provider;
  }

  async list(filter: ProviderFilter = {}): Promise<Provider[]> {
    const where: string[] = [];
    const params: unknown[] = [];
    const param = (v: unknown) => {
      params.push(v);
      return `$${params.length}`;
    };
    if (filter.name) where.push(`p.name = ${param(filter.name)}`);
    if (filter.inTree) {
      where.push(
        `p.root_id = (SELECT root_id FROM resource_providers WHERE uuid = ${param(assertUuid(filter.inTree, "in_tree"))})`,
      );
    }
    for (const anyOf of filter.memberOf ?? []) {
      if (!anyOf.length) continue;
      const aggs = param(anyOf.map((a) => assertUuid(a, "aggregate uuid")));
      where.push(
        `EXISTS (SELECT 1 FROM provider_aggregates a WHERE a.provider_id IN (p.id, p.root_id) AND a.aggregate_uuid = ANY(${aggs}::uuid[]))`,
      );
    }
    for (const trait of filter.requiredTraits ?? []) {
      assertTrait(trait);
      where.push(
        `EXISTS (SELECT 1 FROM provider_traits t WHERE t.provider_id = p.id AND t.trait = ${param(trait)})`,
      );
    }
    for (const [rc, amount] of Object.entries(filter.resources ?? {})) {
      assertResourceClass(rc);
      where.push(
        `EXISTS (SELECT 1 FROM inventories i WHERE i.provider_id = p.id AND i.resource_class = ${param(rc)} AND i.free >= ${param(amount)})`,
      );
    }
    const rows = await this.db.query<ProviderRow>(
      `SELECT ${PROVIDER_COLUMNS} FROM ${PROVIDER_FROM} ${where.length ? `WHERE ${where.join(" AND ")}` : ""} ORDER BY p.id`,
      params,
    );
    return rows.map(toProvider);
  }

  async delete(uuid: string): Promise<void> {
    const id = assertUuid(uuid, "provider uuid");
    await this.writing(async (tx) => {
      const [p] = await tx.query<{ id: number }>(
        "SELECT id FROM resource_providers WHERE uuid = $1 FOR UPDATE",
        [id],
      );
      if (!p) throw notFound(`No resource provider with uuid ${uuid} found`);
      const [child] = await tx.query("SELECT 1 FROM resource_providers WHERE parent_id = $1 LIMIT 1", [p.id]);
      if (child)
        throw conflict(`Unable to delete parent resource provider ${uuid}: It has child resource providers.`);
      const [alloc] = await tx.query("SELECT 1 FROM allocations WHERE provider_id = $1 LIMIT 1", [p.id]);
      if (alloc) {
        throw conflict(`Unable to delete resource provider ${uuid}: Resource provider has allocations.`);
      }
      await tx.query("DELETE FROM resource_providers WHERE id = $1", [p.id]);
    });
  }

  /**
   * Compare-and-swap on the provider generation; returns the provider id and the new generation.
   * Holds the provider's row lock until the transaction ends.
   */
  private async bumpGeneration(
    tx: Queryable,
    uuid: string,
    expected: number,
  ): Promise<{ id: number; generation: number }> {
    const [row] = await tx.query<{ id: number; generation: string }>(
      "UPDATE resource_providers SET generation = generation + 1 WHERE uuid = $1 AND generation = $2 RETURNING id, generation",
      [uuid, expected],
    );
    if (row) return { id: row.id, generation: Number(row.generation) };
    const [current] = await tx.query<{ generation: string }>(
      "SELECT generation FROM resource_providers WHERE uuid = $1",
      [uuid],
    );
    if (!current) throw notFound(`No resource provider with uuid ${uuid} found`);
    throw conflict(
      `resource provider generation conflict: ${uuid} is at generation ${current.generation}, the request expected ${expected}. Re-read the provider and retry.`,
    );
  }

  // ---- inventories -----------------------------------------------------------------------

  async getInventories(uuid: string): Promise<{ generation: number; inventories: InventoryRecord[] }> {
    return this.db.transaction(async (tx) => {
      const p = await providerIdOf(tx, uuid);
      const rows = await tx.query<InventoryRow>(
        `SELECT ${cols("inventories")} FROM inventories WHERE provider_id = $1 ORDER BY resource_class`,
        [p.id],
      );
      return { generation: p.generation, inventories: rows.map(toInventory) };
    });
  }

  /** Replaces all inventories of a provider; refuses to go below what is allocated. */
  async setInventories(
    uuid: string,
    expectedGeneration: number,
    inputs: InventoryInput[],
  ): Promise<{ generation: number; inventories: InventoryRecord[] }> {
    const id = assertUuid(uuid, "provider uuid");
    const wanted = inputs.map(normalizeInventory);
    const seen = new Set<string>();
    for (const inv of wanted) {
      if (seen.has(inv.resourceClass)) throw invalidInput(`resource class ${inv.resourceClass} given twice`);
      seen.add(inv.resourceClass);
    }
    return this.writing(async (tx) => {
      const p = await this.bumpGeneration(tx, id, expectedGeneration);
      const current = await tx.query<{ resource_class: string; used: string }>(
        "SELECT resource_class, used FROM inventories WHERE provider_id = $1",
        [p.id],
      );
      for (const row of current) {
        const used = Number(row.used);
        if (used === 0) continue;
        const next = wanted.find((w) => w.resourceClass === row.resource_class);
        if (!next) {
          throw conflict(
            `Inventory for ${row.resource_class} on resource provider ${uuid} in use: ${used} allocated, it cannot be removed.`,
          );
        }
        if (capacityOf(next) < used) {
          throw conflict(
            `Inventory for ${row.resource_class} on resource provider ${uuid} in use: capacity ${capacityOf(next)} would be below the ${used} allocated.`,
          );
        }
      }
      await tx.query(
        "DELETE FROM inventories WHERE provider_id = $1 AND NOT (resource_class = ANY($2::text[]))",
        [p.id, wanted.map((w) => w.resourceClass)],
      );
      for (const w of wanted) {
        await tx.query(
          `INSERT INTO inventories (provider_id, resource_class, total, reserved, min_unit, max_unit, step_size, allocation_ratio)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
           ON CONFLICT (provider_id, resource_class) DO UPDATE SET total = EXCLUDED.total, reserved = EXCLUDED.reserved,
             min_unit = EXCLUDED.min_unit, max_unit = EXCLUDED.max_unit, step_size = EXCLUDED.step_size,
             allocation_ratio = EXCLUDED.allocation_ratio`,
          [p.id, w.resourceClass, w.total, w.reserved, w.minUnit, w.maxUnit, w.stepSize, w.allocationRatio],
        );
      }
      return { generation: p.generation, inventories: wanted.sort(byClass) };
    });
  }

  // ---- aggregates and traits ---------------------------------------------------------------

  async getAggregates(uuid: string): Promise<{ generation: number; aggregates: string[] }> {
    return this.db.transaction(async (tx) => {
      const p = await providerIdOf(tx, uuid);
      const rows = await tx.query<{ a: string }>(
        "SELECT aggregate_uuid::text AS a FROM provider_aggregates WHERE provider_id = $1 ORDER BY 1",
        [p.id],
      );
      return { generation: p.generation, aggregates: rows.map((r) => r.a) };
    });
  }

  async setAggregates(
    uuid: string,
    expectedGeneration: number,
    aggregates: string[],
  ): Promise<{ generation: number; aggregates: string[] }> {
    const id = assertUuid(uuid, "provider uuid");
    const wanted = [...new Set(aggregates.map((a) => assertUuid(a, "aggregate uuid")))].sort();
    return this.writing(async (tx) => {
      const p = await this.bumpGeneration(tx, id, expectedGeneration);
      await tx.query(
        "DELETE FROM provider_aggregates WHERE provider_id = $1 AND NOT (aggregate_uuid = ANY($2::uuid[]))",
        [p.id, wanted],
      );
      await tx.query(
        "INSERT INTO provider_aggregates (provider_id, aggregate_uuid) SELECT $1, unnest($2::uuid[]) ON CONFLICT DO NOTHING",
        [p.id, wanted],
      );
      return { generation: p.generation, aggregates: wanted };
    });
  }

  async getTraits(uuid: string): Promise<{ generation: number; traits: string[] }> {
    return this.db.transaction(async (tx) => {
      const p = await providerIdOf(tx, uuid);
      const rows = await tx.query<{ trait: string }>(
        "SELECT trait FROM provider_traits WHERE provider_id = $1 ORDER BY trait",
        [p.id],
      );
      return { generation: p.generation, traits: rows.map((r) => r.trait) };
    });
  }

  async setTraits(
    uuid: string,
    expectedGeneration: number,
    traits: string[],
  ): Promise<{ generation: number; traits: string[] }> {
    const id = assertUuid(uuid, "provider uuid");
    for (const t of traits) assertTrait(t);
    const wanted = [...new Set(traits)].sort();
    return this.writing(async (tx) => {
      const p = await this.bumpGeneration(tx, id, expectedGeneration);
      await tx.query("DELETE FROM provider_traits WHERE provider_id = $1 AND NOT (trait = ANY($2::text[]))", [
        p.id,
        wanted,
      ]);
      await tx.query(
        "INSERT INTO provider_traits (provider_id, trait) SELECT $1, unnest($2::text[]) ON CONFLICT DO NOTHING",
        [p.id, wanted],
      );
      await tx.query("UPDATE resource_providers SET shares = $2 WHERE id = $1", [
        p.id,
        wanted.includes(SHARING_TRAIT),
      ]);
      return { generation: p.generation, traits: wanted };
    });
  }
}

/** A provider's id and generation, read without a lock; not found when there is none. */
export async function providerIdOf(q: Queryable, uuid: string): Promise<{ id: number; generation: number }> {
  const [row] = await q.query<{ id: number; generation: string }>(
    "SELECT id, generation FROM resource_providers WHERE uuid = $1",
    [assertUuid(uuid, "provider uuid")],
  );
  if (!row) throw notFound(`No resource provider with uuid ${uuid} found`);
  return { id: row.id, generation: Number(row.generation) };
}

function byClass(a: InventoryRecord, b: InventoryRecord): number {
  return a.resourceClass < b.resourceClass ? -1 : a.resourceClass > b.resourceClass ? 1 : 0;
}
