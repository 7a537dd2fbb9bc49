// What domains and projects share: a name, a description, enabled, tags and extra attributes, and
// one way to change them (a disabled container's tokens are revoked by the caller).
import type { Queryable, Row } from "@stratus/runtime";
import { cols } from "../columns.js";
import { isUniqueViolation } from "./sql-errors.js";

export interface ContainerChanges {
  name?: string | undefined;
  description?: string | undefined;
  enabled?: boolean | undefined;
  tags?: string[] | undefined;
  extra?: Record<string, unknown> | undefined;
}

/** Updates the given fields of a domain or project (extra attributes merged); the row after. */
export async function updateContainer(
  tx: Queryable,
  table: "domains" | "projects",
  id: string,
  c: ContainerChanges,
  duplicate: () => Error,
): Promise<Row> {
  try {
    const [row] = await tx.query(
      `UPDATE ${table} SET name = coalesce($2, name), description = coalesce($3, description),
         enabled = coalesce($4, enabled), tags = coalesce($5, tags), extra = extra || $6::jsonb
       WHERE id = $1 RETURNING ${cols(table)}`,
      [
        id,
        c.name ?? null,
        c.description ?? null,
        c.enabled ?? null,
        c.tags ?? null,
        JSON.stringify(c.extra ?? {}),
      ],
    );
    return row!;
  } catch (err) {
    if (isUniqueViolation(err)) throw duplicate();
    throw err;
  }
}
