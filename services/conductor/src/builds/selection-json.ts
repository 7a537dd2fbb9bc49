// Scheduler selections as JSON for the build row (int64 amounts as numbers).
import type { MessageInitShape } from "@bufbuild/protobuf";
import type { Selection, SelectionSchema } from "@stratus/contracts/scheduler/v1/scheduler";

export interface SelectionJson {
  host: string;
  computeNodeUuid: string;
  allocations: { providerUuid: string; resources: Record<string, number> }[];
}

export function selectionToJson(
  s: Pick<Selection, "host" | "computeNodeUuid" | "allocations">,
): SelectionJson {
  return {
    host: s.host,
    computeNodeUuid: s.computeNodeUuid,
    allocations: s.allocations.map((a) => ({
      providerUuid: a.providerUuid,
      resources: Object.fromEntries(Object.entries(a.resources).map(([k, v]) => [k, Number(v)])),
    })),
  };
}

export function selectionFromJson(s: SelectionJson): MessageInitShape<typeof SelectionSchema> {
  return {
    host: s.host,
    computeNodeUuid: s.computeNodeUuid,
    allocations: s.allocations.map((a) => ({
      providerUuid: a.providerUuid,
      resources: Object.fromEntries(Object.entries(a.resources).map(([k, v]) => [k, BigInt(v)])),
    })),
  };
}
