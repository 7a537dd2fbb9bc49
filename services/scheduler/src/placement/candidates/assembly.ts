// Assembling answers (Placement's allocation_candidate): from one tree and its sharing providers,
// every way to satisfy the request groups with concrete providers, in memory (group_policy,
// amounts that land on one provider fitting together).
import type { ProviderAllocation } from "../allocations.js";
import { unitViolation } from "../inventory.js";
import type { CandidateQuery, RequestGroupSpec } from "./request.js";
import type { InventoryView, ProviderView } from "./trees.js";

export interface Candidate {
  rootUuid: string;
  allocations: ProviderAllocation[];
  /** Group suffix → the provider(s) satisfying it ("" lists every provider of the unnumbered group). */
  mappings: Record<string, string[]>;
}

export function fits(inv: InventoryView | undefined, amount: number): boolean {
  return inv !== undefined && unitViolation(inv, amount) === undefined && inv.used + amount <= inv.capacity;
}

function servesGroup(x: ProviderView, g: RequestGroupSpec, providers: Map<number, ProviderView>): boolean {
  for (const [rc, n] of Object.entries(g.resources)) if (!fits(x.inventories.get(rc), n)) return false;
  for (const t of g.requiredTraits) if (!x.traits.has(t)) return false;
  for (const t of g.forbiddenTraits) if (x.traits.has(t)) return false;
  const root = providers.get(x.rootId);
  for (const anyOf of g.memberOf) {
    if (!anyOf.some((a) => x.aggregates.has(a) || root?.aggregates.has(a))) return false;
  }
  // list() has already replaced in_tree by the uuid of that tree's root.
  if (g.inTree && x.rootUuid !== g.inTree) return false;
  return true;
}

interface Choice {
  suffix: string;
  /** resource class → provider serving it. */
  parts: { rc: string; amount: number; provider: ProviderView }[];
}

function cartesian<T>(lists: T[][], cap: number): T[][] {
  let out: T[][] = [[]];
  for (const list of lists) {
    const next: T[][] = [];
    for (const prefix of out) {
      for (const item of list) {
        next.push([...prefix, item]);
        if (next.length >= cap) break;
      }
      if (next.length >= cap) break;
    }
    out = next;
  }
  return out;
}

/**
 * Every way (up to `cap`) to satisfy the groups from one tree plus its sharing providers: the
 * unnumbered group class by class, each numbered group from a single provider; isolate keeps the
 * numbered groups on different providers; amounts landing on one provider must fit together.
 */
export function assembleCandidates(
  rootId: number,
  candidatesOf: { tree: number[]; sharing: number[] },
  providers: Map<number, ProviderView>,
  query: CandidateQuery,
  cap: number,
): Candidate[] {
  const pool = [...candidatesOf.tree, ...candidatesOf.sharing]
    .map((id) => providers.get(id))
    .filter((p): p is ProviderView => p !== undefined);
  const root = providers.get(rootId)!;
  const perGroup: Choice[][] = [];
  for (const g of query.groups) {
    if (g.suffix === "") {
      const perClass = Object.entries(g.resources).map(([rc, amount]) =>
        pool.filter((x) => fits(x.inventories.get(rc), amount)).map((provider) => ({ rc, amount, provider })),
      );
      if (perClass.some((l) => l.length === 0)) return [];
      // Prefer the root itself first: a compute node serves its own VCPU/MEMORY_MB/DISK_GB.
      for (const l of perClass)
        l.sort((a, b) => Number(b.provider.id === root.id) - Number(a.provider.id === root.id));
      perGroup.push(cartesian(perClass, cap).map((parts) => ({ suffix: "", parts })));
    } else {
      const options = pool.filter((x) => servesGroup(x, g, providers));
      if (!options.length) return [];
      perGroup.push(
        options.map((provider) => ({
          suffix: g.suffix,
          parts: Object.entries(g.resources).map(([rc, amount]) => ({ rc, amount, provider })),
        })),
      );
    }
  }
  const out: Candidate[] = [];
  const seen = new Set<string>();
  for (const combo of cartesian(perGroup, cap * 4)) {
    if (query.groupPolicy === "isolate") {
      const numbered = combo.filter((c) => c.suffix !== "").map((c) => c.parts[0]!.provider.id);
      if (new Set(numbered).size !== numbered.length) continue;
    }
    const sums = new Map<string, { provider: ProviderView; rc: string; amount: number }>();
    for (const choice of combo) {
      for (const part of choice.parts) {
        const key = `${part.provider.id}/${part.rc}`;
        const s = sums.get(key);
        if (s) s.amount += part.amount;
        else sums.set(key, { provider: part.provider, rc: part.rc, amount: part.amount });
      }
    }
    let ok = true;
    for (const s of sums.values()) {
      const inv = s.provider.inventories.get(s.rc)!;
      if (inv.used + s.amount > inv.capacity) ok = false;
    }
    if (!ok) continue;
    const allocations = new Map<string, ProviderAllocation>();
    for (const s of sums.values()) {
      let a = allocations.get(s.provider.uuid);
      if (!a) {
        a = { providerUuid: s.provider.uuid, resources: {} };
        allocations.set(s.provider.uuid, a);
      }
      a.resources[s.rc] = s.amount;
    }
    const sorted = [...allocations.values()].sort((a, b) => (a.providerUuid < b.providerUuid ? -1 : 1));
    const key = JSON.stringify(sorted);
    if (seen.has(key)) continue;
    seen.add(key);
    const mappings: Record<string, string[]> = {};
    for (const choice of combo) {
      mappings[choice.suffix] = [...new Set(choice.parts.map((p) => p.provider.uuid))];
    }
    out.push({ rootUuid: root.uuid, allocations: sorted, mappings });
    if (out.length >= cap) break;
  }
  return out;
}
