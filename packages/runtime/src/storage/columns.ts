// Statements name the columns they read. A `SELECT *` or `RETURNING *` takes its result type from
// the table as it is when the statement is prepared; once another replica's migration adds a
// column, every connection that prepared it fails with "cached plan must not change result type"
// (SQLSTATE 0A000), and a replica of the previous version could not run beside the next one.
// test/foundation/sql-columns.test.ts keeps `*` out of the services' SQL.

/** The columns as a select list, each qualified by `alias` when given: `s.id, s.name`. */
export function columnList(columns: readonly string[], alias?: string): string {
  return alias ? columns.map((c) => `${alias}.${c}`).join(", ") : columns.join(", ");
}

/** A service's tables' columns, and the select list of one of them. */
export function tableColumns<T extends Record<string, readonly string[]>>(
  tables: T,
): (table: keyof T & string, alias?: string) => string {
  return (table, alias) => columnList(tables[table] as readonly string[], alias);
}
