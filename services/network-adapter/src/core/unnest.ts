// Statements that serve many calls take their input as parallel arrays (unnest): one array per
// column, one element per call.

type Row = Record<string, unknown>;

/** Rows of values as the columns of an unnest(): one array per position. */
export function columns(rows: unknown[][], width: number): unknown[][] {
  const cols = Array.from({ length: width }, () => [] as unknown[]);
  for (const row of rows) for (const [i, v] of row.entries()) cols[i]!.push(v);
  return cols;
}

/** Each key's row of a result (by the row's `column`), in the order of the keys; undefined for a key without one. */
export function rowsByKey(keys: string[], rows: Row[], column: string): (Row | undefined)[] {
  const byKey = new Map(rows.map((r) => [String(r[column]), r]));
  return keys.map((key) => byKey.get(key));
}
