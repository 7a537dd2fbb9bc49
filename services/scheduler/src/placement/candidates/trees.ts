// The rows of the candidate statement (search-sql.ts) read into memory: each provider with its
// inventories, traits and aggregates, the returned roots in rank order, each tree's members and
// the sharing providers linked to it; and a provider's summary as ListAllocationCandidates
// answers it.

/** A row of the candidate statement. */
export interface ProviderRow {
  id: number;
  uuid: string;
  name: string;
  root_id: number;
  root_uuid: string;
  parent_uuid: string | null;
  shares: boolean;
  inv: {
    rc: string;
    min_unit: number;
    max_unit: number;
    step_size: number;
    used: number;
    capacity: number;
  }[];
  traits: string[] | null;
  aggs: string[] | null;
  /** Rank of a returned root (null for other providers); bigint comes back as a string. */
  ord: string | number | null;
  sharing: number[] | null;
  [k: string]: unknown;
}

export interface InventoryView {
  capacity: number;
  used: number;
  minUnit: number;
  maxUnit: number;
  stepSize: number;
}

/** A provider with everything assembly needs. */
export interface ProviderView {
  id: number;
  uuid: string;
  name: string;
  rootId: number;
  rootUuid: string;
  parentUuid: string;
  shares: boolean;
  traits: Set<string>;
  aggregates: Set<string>;
  inventories: Map<string, InventoryView>;
}

export interface Trees {
  /** The roots returned, best first. */
  rootIds: number[];
  providers: Map<number, ProviderView>;
  trees: Map<number, number[]>;
  sharing: Map<number, number[]>;
}

/** Reads the rows of `candidatesQuery` into providers, the members of each tree and its sharers. */
export function readTrees(rows: ProviderRow[]): Trees {
  const providers = new Map<number, ProviderView>();
  const ranked: [number, number][] = [];
  const sharing = new Map<number, number[]>();
  for (const r of rows) {
    const inv = typeof r.inv === "string" ? (JSON.parse(r.inv) as ProviderRow["inv"]) : r.inv;
    providers.set(r.id, {
      id: r.id,
      uuid: r.uuid,
      name: r.name,
      rootId: r.root_id,
      rootUuid: r.root_uuid,
      parentUuid: r.parent_uuid ?? "",
      shares: r.shares,
      traits: new Set(r.traits ?? []),
      aggregates: new Set(r.aggs ?? []),
      inventories: new Map(
        inv.map((i) => [
          i.rc,
          {
            capacity: Number(i.capacity),
            used: Number(i.used),
            minUnit: Number(i.min_unit),
            maxUnit: Number(i.max_unit),
            stepSize: Number(i.step_size),
          },
        ]),
      ),
    });
    if (r.ord !== null && r.ord !== undefined) {
      ranked.push([Number(r.ord), r.id]);
      sharing.set(r.id, (r.sharing ?? []).map(Number));
    }
  }
  const rootIds = ranked.sort((a, b) => a[0] - b[0]).map(([, id]) => id);
  const roots = new Set(rootIds);
  const trees = new Map<number, number[]>(rootIds.map((id) => [id, []]));
  // Rows come ordered by id: each tree's members in id order.
  for (const p of providers.values()) if (roots.has(p.rootId)) trees.get(p.rootId)!.push(p.id);
  return { rootIds, providers, trees, sharing };
}

export interface ResourceUsage {
  capacity: number;
  used: number;
}

export interface ProviderSummary {
  uuid: string;
  name: string;
  rootUuid: string;
  parentUuid: string;
  shares: boolean;
  traits: string[];
  aggregates: string[];
  resources: Record<string, ResourceUsage>;
}

export function summarize(p: ProviderView): ProviderSummary {
  return {
    uuid: p.uuid,
    name: p.name,
    rootUuid: p.rootUuid,
    parentUuid: p.parentUuid,
    shares: p.shares,
    traits: [...p.traits].sort(),
    aggregates: [...p.aggregates].sort(),
    resources: Object.fromEntries(
      [...p.inventories.entries()].map(([rc, inv]) => [rc, { capacity: inv.capacity, used: inv.used }]),
    ),
  };
}
