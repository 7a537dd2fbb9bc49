// The scheduler's claims (SelectDestinations' allocation write for a consumer that holds nothing
// yet): each in one statement, and the claims that arrive together in one statement for all of
// them. The same guarantees as Allocations.put: providers locked in uuid order, then their
// inventory rows, capacity and unit constraints checked on the locked rows, nothing written
// unless everything fits.
import { conflict, type Database, invalidInput, TurnBatcher } from "@stratus/runtime";
import {
  type AllocationsWritten,
  type ClassAmount,
  mergeAllocations,
  type PutAllocationsRequest,
} from "./allocations.js";
import { assertAllocatable } from "./inventory.js";
import { assertUuid } from "./names.js";

/**
 * Claims.claimNew in one statement. $1 consumer, $2 project, $3 user, $4/$5/$6 wanted
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
 * others are being written; see Claims.claimNew). $1/$2/$3 consumers, projects, users;
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
  wanted: ClassAmount[];
  uuids: string[];
}

/** Claim statements in flight before new claims wait to go together in the next one. */
const CLAIM_STATEMENTS = 2;
/** Claims in one statement, at most. */
const CLAIM_BATCH = 16;

/** An inventory row as the single claim's statement locked it (capacity derived in SQL). */
interface LockedRow {
  uuid: string;
  rc: string;
  used: number;
  capacity: number;
  min_unit: number;
  max_unit: number;
  step_size: number;
}

export class Claims {
  // The claims of one turn of the event loop are gathered first and go together (see claimNew).
  private readonly batcher = new TurnBatcher((batch: PendingClaim[]) => this.claimBatch(batch), {
    inFlight: CLAIM_STATEMENTS,
    maxBatch: CLAIM_BATCH,
    aloneOnError: true,
  });

  constructor(private readonly db: Database) {}

  /**
   * The scheduler's claim for a consumer that holds nothing yet, in one statement (the common case
   * of SelectDestinations; Allocations.put takes 11 round trips). It locks the providers in uuid
   * order and then their inventory rows, as Allocations.put does, checks capacity and unit
   * constraints on the locked rows, and writes only if every row fits: consumer (generation 1),
   * used, allocations and provider generations. A refusal is the conflict Allocations.put would
   * raise. Returns undefined when the consumer already exists: the caller falls back to
   * Allocations.put, which replaces what it holds.
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
    // turn of the event loop are gathered first: on PGlite a statement runs on this thread, start
    // to end, inside the microtasks of the call that made it, so it is over before the next
    // request is even read and no claim would ever wait for one in flight; on PostgreSQL a claim
    // that found fewer than CLAIM_STATEMENTS in flight would go alone at once, where a batch
    // costs the database little more than one claim (docs/performance.md, "Claims per turn").
    return this.batcher.add({ consumer, projectId: req.projectId, userId: req.userId, wanted, uuids });
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
      rows: LockedRow[] | string | null;
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
    const rows = (typeof row!.rows === "string" ? JSON.parse(row!.rows) : (row!.rows ?? [])) as LockedRow[];
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
}
