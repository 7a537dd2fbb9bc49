// The columns of the placement database's tables that statements read (packages/runtime's
// storage/columns.ts says why no statement reads `*`). A column added by a migration is read
// once it is listed here.
import { tableColumns } from "@stratus/runtime";

export const cols = tableColumns({
  inventories: [
    "provider_id",
    "resource_class",
    "total",
    "reserved",
    "min_unit",
    "max_unit",
    "step_size",
    "allocation_ratio",
    "used",
    "capacity",
    "free",
  ],
});
