// The placement model (Placement API semantics, reference §7): resource providers and their
// inventories, traits and aggregates, and consumers' allocations. Every write that can race is
// guarded by a generation: the provider's for inventories/traits/aggregates, the consumer's for
// allocations; allocation writes lock the providers involved (in uuid order) and check capacity
// under the lock, so no provider is ever over-committed whatever the number of schedulers.
import { randomUUID } from "node:crypto";
import {
  conflict,
  type Database,
  invalidInput,
  notFound,
  type Queryable,
  TurnBatcher,
} from "@stratus/runtime";
import {
  assertAllocatable,
  capacityOf,
  type InventoryInput,
  type InventoryRecord,
  normalizeInventory,
} from "./inventory.js";
import { assertResourceClass, assertTrait, assertUuid, SHARING_TRAIT } from "./names.js";

export interface Provider {
  uuid: string;
  name: string;
  generation: number;
  parentUuid: string;
  rootUuid: string;
}

export interface ProviderAllocation {
  providerUuid: string;
  resources: Record<string, number>;
}

export interface ConsumerAllocations {
  allocations: (ProviderAllocation & { providerGeneration: number })[];
  projectId: string;
  userId: string;
  /** 0 when the consumer holds nothing. */
  consumerGeneration: number;
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

interface InventoryRow {
  resource_class: string;
  total: string | number;
  reserved: string | number;
  min_unit: string | number;
  max_unit: string | number;
  step_size: string | number;
  allocation_ratio: string | number;
  used: string | number;
  [k: string]: unknown;
}

function toInventory(r: InventoryRow): InventoryRecord {
  return {
    resourceClass: r.resource_class,
    total: Number(r.total),
    reserved: Number(r.reserved),
    minUnit: Number(r.min_unit),
    maxUnit: Number(r.max_unit),
    stepSize: Number(r.step_size),
    allocationRatio: Number(r.allocation_ratio),
  };
}

function requireName(name: string): string {
  const trimmed = name.trim();
  if (!trimmed || trimmed.length > 200) throw invalidInput("provider name must be 1-200 characters");
  return trimmed;
}

/**
 * Placement.claimNew in one statement. $1 consumer, $2 project, $3 user, $4/$5/$6 wanted
 * (provider uuid, class, amount), $7 distinct providers, $8 wanted rows. Each step reads the one
 * before it, so the order is: lock providers (uuid order) → lock inventory rows → check → insert
 * the consumer only if everything fits (ON CONFLICT: it exists, write nothing) → the rest only if
 * the consumer was inserted. Row locks taken in read committed return the latest committed rows,
 * so the check sees what concurrent claims committed; the UPDATE adds to that same latest row.
 */
const CLAIM_SQL = `WITH w AS (SELECT * FROM unnest($4::uuid[], $5::text[], $6::bigint[]) AS w(provider_uuid, rc, amount)),
p AS MATERIALIZED (SELECT id, uuid FROM resource_providers WHERE uuid IN (SELECT provider_uuid FROM w) ORDER BY uuid FOR UPDATE),
locked AS MATERIALIZED (SELECT i.provider_id, i.resource_class, p.uuid, w.amount, i.used, i.capacity, i.min_unit, i.max_unit, i.step_size
  FROM w JOIN p ON p.uuid = w.provider_uuid JOIN inventories i ON i.provider_id = p.id AND i.resource_class = w.rc
  WHERE (SELECT count(*) FROM p) = $7::int
  ORDER BY i.provider_id, i.resource_class FOR UPDATE OF i),
ok AS (SELECT count(*) = $8::int AND bool_and(used + amount <= capacity AND amount >= min_unit AND amount <= max_unit
  AND amount % step_size = 0) AS fits FROM locked),
c AS (INSERT INTO consumers (uuid, project_id, user_id, generation) SELECT $1, $2, $3, 1 FROM ok WHERE ok.fits
  ON CONFLICT DO NOTHING RETURNING uuid),
u AS (UPDATE inventories i SET used = i.used + l.amount FROM locked l, c
  WHERE i.provider_id = l.provider_id AND i.resource_class = l.resource_class RETURNING i.provider_id),
a AS (INSERT INTO allocations (consumer_uuid, provider_id, resource_class, used)
  SELECT c.uuid, l.provider_id, l.resource_class, l.amount FROM locked l, c RETURNING provider_id),
g AS (UPDATE resource_providers rp SET generation = rp.generation + 1 FROM c WHERE rp.id IN (SELECT id FROM p) RETURNING rp.id)
SELECT (SELECT count(*) FROM p)::int AS providers,
  EXISTS (SELECT 1 FROM c) AS created,
  EXISTS (SELECT 1 FROM consumers WHERE uuid = $1) AS exists,
  (SELECT json_agg(json_build_object('uuid', l.uuid::text, 'rc', l.resource_class, 'used', l.used, 'capacity', l.capacity,
    'min_unit', l.min_unit, 'max_unit', l.max_unit, 'step_size', l.step_size)) FROM locked l) AS rows,
  (SELECT count(*) FROM u) + (SELECT count(*) FROM a) + (SELECT count(*) FROM g) AS written`;

/**
 * Several new consumers' claims in one statement, all or nothing (claims that arrive while
 * others are being written; see Placement.claimNew). $1/$2/$3 consumers, projects, users;
 * $4..$7 the wanted rows (consumer index from 1, provider uuid, class, amount); $8 distinct
 * providers; $9 distinct (provider, class) rows. The same steps as CLAIM_SQL: lock the providers
 * in uuid order, then their inventory rows, check every row with the batch's sum on it and each
 * claim's own amount against the units, and write only if all of it fits and no consumer exists
 * yet (one created meanwhile makes the INSERT fail, and with it the statement).
 */
const CLAIM_BATCH_SQL = `WITH w AS (SELECT * FROM unnest($4::int[], $5::uuid[], $6::text[], $7::bigint[]) AS w(k, provider_uuid, rc, amount)),
ws AS (SELECT provider_uuid, rc, sum(amount)::bigint AS amount FROM w GROUP BY provider_uuid, rc),
p AS MATERIALIZED (SELECT id, uuid FROM resource_providers WHERE uuid IN (SELECT provider_uuid FROM ws) ORDER BY uuid FOR UPDATE),
locked AS MATERIALIZED (SELECT i.provider_id, i.resource_class, p.uuid, ws.amount, i.used, i.capacity, i.min_unit, i.max_unit, i.step_size
  FROM ws JOIN p ON p.uuid = ws.provider_uuid JOIN inventories i ON i.provider_id = p.id AND i.resource_class = ws.rc
  WHERE (SELECT count(*) FROM p) = $8::int
  ORDER BY i.provider_id, i.resource_class FOR UPDATE OF i),
ok AS MATERIALIZED (SELECT (SELECT count(*) FROM locked) = $9::int
  AND (SELECT coalesce(bool_and(used + amount <= capacity), false) FROM locked)
  AND (SELECT coalesce(bool_and(w.amount >= l.min_unit AND w.amount <= l.max_unit AND w.amount % l.step_size = 0), false)
    FROM w JOIN locked l ON l.uuid = w.provider_uuid AND l.resource_class = w.rc)
  AND NOT EXISTS (SELECT 1 FROM consumers WHERE uuid = ANY($1::uuid[])) AS fits),
c AS (INSERT INTO consumers (uuid, project_id, user_id, generation)
  SELECT u.uuid, u.project_id, u.user_id, 1 FROM unnest($1::uuid[], $2::text[], $3::text[]) AS u(uuid, project_id, user_id), ok
  WHERE ok.fits RETURNING uuid),
u AS (UPDATE inventories i SET used = i.used + l.amount FROM locked l, ok
  WHERE ok.fits AND i.provider_id = l.provider_id AND i.resource_class = l.resource_class RETURNING i.provider_id),
a AS (INSERT INTO allocations (consumer_uuid, provider_id, resource_class, used)
  SELECT ($1::uuid[])[w.k], l.provider_id, l.resource_class, w.amount
  FROM w JOIN locked l ON l.uuid = w.provider_uuid AND l.resource_class = w.rc, ok WHERE ok.fits RETURNING provider_id),
g AS (UPDATE resource_providers rp SET generation = rp.generation + 1 FROM ok
  WHERE ok.fits AND rp.id IN (SELECT id FROM p) RETURNING rp.id)
SELECT (SELECT fits FROM ok) AS fits,
  (SELECT count(*) FROM c) + (SELECT count(*) FROM u) + (SELECT count(*) FROM a) + (SELECT count(*) FROM g) AS written`;

/** A claim waiting for its statement. */
interface PendingClaim {
  consumer: string;
  projectId: string;
  userId: string;
  wanted: { providerUuid: string; resourceClass: string; amount: number }[];
  uuids: string[];
}

/** Claim statements in flight before new claims wait to go together in the next one. */
const CLAIM_STATEMENTS = 2;
const CLAIM_BATCH = 16;

export class Placement {
  private writes = 0;
  // The claims of one turn of the event loop are gathered first and go together (see claimNew).
  private readonly claims = new TurnBatcher((batch: PendingClaim[]) => this.claimBatch(batch), {
    inFlight: CLAIM_STATEMENTS,
    maxBatch: CLAIM_BATCH,
    aloneOnError: true,
  });

  constructor(readonly db: Database) {}

  /**
   * Counts the writes made through this object other than `claimNew` (whose effect the scheduler
   * applies to its own view): a view of the providers read before a write finished is stale when
   * this has moved on since.
   */
  get version(): number {
    return this.writes;
  }

  /** Told after each such write (main.ts tells the other schedulers). */
  onWrite: () => void = () => undefined;

  /** Another scheduler wrote placement: what was read before is stale here too. */
  writtenElsewhere(): void {
    this.writes++;
  }

  private async writing<T>(fn: (tx: Queryable) => Promise<T>): Promise<T> {
    try {
      return await this.db.transaction(fn);
    } finally {
      this.writes++;
      this.onWrite();
    }
  }

  // ---- providers -------------------------------------------------------------------------

  async createProvider(input: { uuid?: string; name: string; parentUuid?: string }): Promise<Provider> {
    const uuid = input.uuid ? assertUuid(input.uuid, "provider uuid") : randomUUID();
    const name = requireName(input.name);
    return this.writing(async (tx) => {
      const inserted = await this.insertProvider(tx, uuid, name, input.parentUuid);
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
  async ensureProvider(input: {
    uuid: string;
    name: string;
    parentUuid?: string;
  }): Promise<{ provider: Provider; created: boolean }> {
    const uuid = assertUuid(input.uuid, "provider uuid");
    const name = requireName(input.name);
    const existing = await this.findProvider(this.db, uuid);
    if (existing) return { provider: existing, created: false };
    return this.writing(async (tx) => {
      const inserted = await this.insertProvider(tx, uuid, name, input.parentUuid);
      if (inserted) return { provider: inserted, created: true };
      const winner = await this.findProvider(tx, uuid);
      if (winner) return { provider: winner, created: false };
      throw conflict(`Conflicting resource provider name: ${name} already exists with another uuid.`);
    });
  }

  /** Inserts a provider; undefined when the uuid or name is taken (ON CONFLICT DO NOTHING). */
  private async insertProvider(
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
    return this.findProvider(tx, uuid);
  }

  private async findProvider(q: Queryable, uuid: string): Promise<Provider | undefined> {
    const [row] = await q.query<ProviderRow>(
      `SELECT ${PROVIDER_COLUMNS} FROM ${PROVIDER_FROM} WHERE p.uuid = $1`,
      [uuid],
    );
    return row ? toProvider(row) : undefined;
  }

  async getProvider(uuid: string): Promise<Provider> {
    const provider = await this.findProvider(this.db, assertUuid(uuid, "provider uuid"));
    if (!provider) throw notFound(`No resource provider with uuid ${uuid} found`);
    return provider;
  }

  async listProviders(filter: ProviderFilter = {}): Promise<Provider[]> {
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

  async deleteProvider(uuid: string): Promise<void> {
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

  private async providerId(q: Queryable, uuid: string): Promise<{ id: number; generation: number }> {
    const [row] = await q.query<{ id: number; generation: string }>(
      "SELECT id, generation FROM resource_providers WHERE uuid = $1",
      [assertUuid(uuid, "provider uuid")],
    );
    if (!row) throw notFound(`No resource provider with uuid ${uuid} found`);
    return { id: row.id, generation: Number(row.generation) };
  }

  // ---- inventories -----------------------------------------------------------------------

  async getInventories(uuid: string): Promise<{ generation: number; inventories: InventoryRecord[] }> {
    return this.db.transaction(async (tx) => {
      const p = await this.providerId(tx, uuid);
      const rows = await tx.query<InventoryRow>(
        "SELECT * FROM inventories WHERE provider_id = $1 ORDER BY resource_class",
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
      const p = await this.providerId(tx, uuid);
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
      const p = await this.providerId(tx, uuid);
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

  // ---- usages and allocations --------------------------------------------------------------

  /** Usages of one provider (every class it has inventory of) or of a project (and user). */
  async getUsages(query: {
    providerUuid?: string;
    projectId?: string;
    userId?: string;
  }): Promise<Record<string, number>> {
    let rows: { resource_class: string; used: string }[];
    if (query.providerUuid) {
      const p = await this.providerId(this.db, query.providerUuid);
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

  async getAllocations(consumerUuid: string): Promise<ConsumerAllocations> {
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
  async putAllocations(req: PutAllocationsRequest): Promise<AllocationsWritten> {
    const consumer = assertUuid(req.consumerUuid, "consumer uuid");
    const wanted = mergeAllocations(req.allocations);
    if (wanted.length && !req.projectId) throw invalidInput("project_id is required with allocations");
    return this.writing((tx) => this.writeAllocations(tx, consumer, wanted, req));
  }

  /**
   * The scheduler's claim for a consumer that holds nothing yet, in one statement (the common case
   * of SelectDestinations; putAllocations takes 11 round trips). It locks the providers in uuid
   * order and then their inventory rows, as putAllocations does, checks capacity and unit
   * constraints on the locked rows, and writes only if every row fits: consumer (generation 1),
   * used, allocations and provider generations. A refusal is the conflict putAllocations would
   * raise. Returns undefined when the consumer already exists: the caller falls back to
   * putAllocations, which replaces what it holds.
   */
  async claimNew(
    req: Omit<PutAllocationsRequest, "expectedGeneration">,
  ): Promise<AllocationsWritten | undefined> {
    const consumer = assertUuid(req.consumerUuid, "consumer uuid");
    const wanted = mergeAllocations(req.allocations);
    if (!wanted.length) throw invalidInput("a claim needs allocations");
    if (!req.projectId) throw invalidInput("project_id is required with allocations");
    const uuids = [...new Set(wanted.map((w) => w.providerUuid))];
    // Claims that arrive while CLAIM_STATEMENTS are being written go together in the next one:
    // one statement, one lock of each provider and one commit for all of them. The claims of one
    // turn of the event loop are gathered first. On PGlite a statement runs on this thread, start
    // to end, inside the microtasks of the call that made it: it is over before the next request
    // is even read, so no claim would ever wait for one in flight and each would go alone (1.4 ms
    // a statement: ~370 claims/s in bench/placement; gathered, batches of 16: ~650/s). On
    // PostgreSQL claims also meet while statements are in flight, but a claim that found fewer
    // than CLAIM_STATEMENTS in flight went alone at once: 350 of 2,000 claims at 1,000 hosts /
    // 100 segments, each statement ~2 ms against ~6 ms for a batch of ~8; gathered, 70-100 (the
    // claim statements' time per run 2.2 s -> 1.4-1.8 s).
    return this.claims.add({ consumer, projectId: req.projectId, userId: req.userId, wanted, uuids });
  }

  /**
   * A batch all at once when it all fits; otherwise (it does not fit, or the statement fails: a
   * consumer created meanwhile) the batcher runs each claim again alone (aloneOnError), where it
   * gets its own answer.
   */
  private async claimBatch(batch: PendingClaim[]): Promise<(AllocationsWritten | undefined)[]> {
    if (batch.length === 1) return [await this.claimOne(batch[0]!)];
    if (!(await this.claimTogether(batch))) throw new Error("the batch of claims does not fit as a whole");
    return batch.map((c) => ({ consumerGeneration: 1, providerUuids: c.uuids.sort(), previous: [] }));
  }

  private async claimTogether(batch: PendingClaim[]): Promise<boolean> {
    const rows = batch.flatMap((c, k) => c.wanted.map((w) => ({ k: k + 1, ...w })));
    const [row] = await this.db.query<{ fits: boolean }>(
      CLAIM_BATCH_SQL,
      [
        batch.map((c) => c.consumer),
        batch.map((c) => c.projectId),
        batch.map((c) => c.userId),
        rows.map((r) => r.k),
        rows.map((r) => r.providerUuid),
        rows.map((r) => r.resourceClass),
        rows.map((r) => r.amount),
        new Set(rows.map((r) => r.providerUuid)).size,
        new Set(rows.map((r) => `${r.providerUuid}/${r.resourceClass}`)).size,
      ],
      { name: "sched_claim_batch", genericPlan: true },
    );
    return row?.fits === true;
  }

  private async claimOne(claim: PendingClaim): Promise<AllocationsWritten | undefined> {
    const { consumer, wanted, uuids } = claim;
    const [row] = await this.db.query<{
      providers: number;
      created: boolean;
      exists: boolean;
      rows:
        | {
            uuid: string;
            rc: string;
            amount: number;
            used: number;
            capacity: number;
            min_unit: number;
            max_unit: number;
            step_size: number;
          }[]
        | string
        | null;
    }>(
      CLAIM_SQL,
      [
        consumer,
        claim.projectId,
        claim.userId,
        wanted.map((w) => w.providerUuid),
        wanted.map((w) => w.resourceClass),
        wanted.map((w) => w.amount),
        uuids.length,
        wanted.length,
      ],
      { name: "sched_claim_new", genericPlan: true },
    );
    if (row!.created) {
      return { consumerGeneration: 1, providerUuids: uuids.sort(), previous: [] };
    }
    if (row!.exists) return undefined;
    const rows = (typeof row!.rows === "string" ? JSON.parse(row!.rows) : (row!.rows ?? [])) as {
      uuid: string;
      rc: string;
      used: number;
      capacity: number;
      min_unit: number;
      max_unit: number;
      step_size: number;
    }[];
    if (Number(row!.providers) < uuids.length) {
      const found = new Set(rows.map((r) => r.uuid));
      const missing = uuids.find((u) => !found.has(u));
      throw invalidInput(`Allocation for resource provider ${missing ?? uuids[0]} that does not exist.`);
    }
    for (const w of wanted) {
      const r = rows.find((x) => x.uuid === w.providerUuid && x.rc === w.resourceClass);
      if (!r) {
        throw conflict(
          `Unable to allocate inventory: resource provider ${w.providerUuid} has no inventory of ${w.resourceClass}.`,
        );
      }
      // capacity is derived in SQL: total/reserved/ratio are only needed through it.
      assertAllocatable(
        w.providerUuid,
        {
          resourceClass: w.resourceClass,
          total: Number(r.capacity),
          reserved: 0,
          minUnit: Number(r.min_unit),
          maxUnit: Number(r.max_unit),
          stepSize: Number(r.step_size),
          allocationRatio: 1,
        },
        Number(r.used),
        w.amount,
      );
    }
    // The rows fitted when read under lock, so only a consumer created meanwhile is left.
    return undefined;
  }

  /** DELETE /allocations/{consumer}: unconditional, idempotent. */
  async deleteAllocations(consumerUuid: string): Promise<AllocationsWritten> {
    return this.putAllocations({
      consumerUuid,
      allocations: [],
      projectId: "",
      userId: "",
      expectedGeneration: "any",
    });
  }

  private async writeAllocations(
    tx: Queryable,
    consumer: string,
    wanted: { providerUuid: string; resourceClass: string; amount: number }[],
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

function byClass(a: InventoryRecord, b: InventoryRecord): number {
  return a.resourceClass < b.resourceClass ? -1 : a.resourceClass > b.resourceClass ? 1 : 0;
}

/** Validates and flattens allocations, summing repeated (provider, class) pairs. */
export function mergeAllocations(
  allocations: ProviderAllocation[],
): { providerUuid: string; resourceClass: string; amount: number }[] {
  const sums = new Map<string, { providerUuid: string; resourceClass: string; amount: number }>();
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

export function groupAllocations(
  flat: { providerUuid: string; resourceClass: string; amount: number }[],
): ProviderAllocation[] {
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
