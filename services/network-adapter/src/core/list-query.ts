// Neutron's list parameters (filters, sorting, pagination with limit and marker) as SQL, one
// mechanism for every list: each resource declares its public fields once (list-fields.ts: the
// SQL of each field for a row and its type), and the WHERE conditions, the ORDER BY and the
// keyset condition of a page are built from that declaration. Filtering, ordering and cutting
// happen in the database; the visibility conditions of the list (rules.ts) stay in its WHERE.
import type { ListQuery } from "@stratus/contracts/network/v1";
import { invalidInput, notFound, type Queryable } from "@stratus/runtime";
import { isUuid } from "./ids.js";

/** Parameters of one statement: each value added gets the next placeholder. */
export class SqlParams {
  readonly values: unknown[] = [];

  /** The placeholder of a new parameter, with an SQL cast if given (e.g. "::uuid"). */
  add(value: unknown, cast = ""): string {
    this.values.push(value);
    return `$${this.values.length}${cast}`;
  }

  /** The number the next parameter gets. */
  get next(): number {
    return this.values.length + 1;
  }

  /** Adds parameters that SQL built elsewhere numbered from `next` onwards. */
  addAll(values: unknown[]): void {
    this.values.push(...values);
  }
}

export type FieldType = "text" | "uuid" | "bool" | "int" | "timestamp";

const CASTS: Record<FieldType, string> = {
  text: "::text",
  uuid: "::uuid",
  bool: "::boolean",
  int: "::bigint",
  timestamp: "::timestamptz",
};

/** One public field of a resource. */
export interface Field {
  /** SQL of the field for the row of alias `a`. */
  sql: (a: string) => string;
  type: FieldType;
  /** Not a sort key (nullable or computed: no total order to page on). */
  unsortable?: boolean;
  /** Its own filter instead of equality with one of the values (e.g. fixed_ips' "ip_address=…"). */
  filter?: (a: string, values: string[], params: SqlParams) => string;
}

export type FieldMap = Readonly<Record<string, Field>>;

/** A resource as lists see it: its table, the alias its SQL uses, its name in messages, its fields. */
export interface ListedResource {
  table: string;
  alias: string;
  what: string;
  fields: FieldMap;
  /** The fields a list asking for no order is sorted on, before the id (default: created_at). */
  defaultOrder?: string[];
}

/** A filter value as its field's type, or invalid_input. */
export function filterValue(field: string, type: FieldType, value: string): unknown {
  switch (type) {
    case "bool": {
      const v = value.toLowerCase();
      if (v === "true" || v === "1") return true;
      if (v === "false" || v === "0") return false;
      throw invalidInput(`Invalid input for operation: '${value}' cannot be converted to boolean.`);
    }
    case "int":
      if (!/^-?\d{1,18}$/.test(value)) {
        throw invalidInput(`Invalid input for operation: '${value}' is not an integer (${field}).`);
      }
      return value;
    case "uuid":
      return value.toLowerCase();
    case "timestamp":
      if (!/^\d{4}-\d\d-\d\d([T ]\d\d:\d\d(:\d\d(\.\d{1,6})?)?(Z|[+-]\d\d(:?\d\d)?)?)?$/.test(value)) {
        throw invalidInput(`Invalid input for operation: '${value}' is not a valid timestamp (${field}).`);
      }
      return value;
    default:
      return value;
  }
}

/** SQL: the filters of a query, one condition per field (its values are alternatives). */
function filterConditions(resource: ListedResource, query: ListQuery, params: SqlParams): string[] {
  const byField = new Map<string, string[]>();
  for (const f of query.filters) byField.set(f.field, [...(byField.get(f.field) ?? []), ...f.values]);
  const conditions: string[] = [];
  for (const [name, values] of byField) {
    const field = resource.fields[name];
    if (!field) throw invalidInput(`${name} is an invalid attribute for filtering`);
    if (!values.length) continue;
    if (field.filter) {
      conditions.push(field.filter(resource.alias, values, params));
      continue;
    }
    const typed = values.map((v) => filterValue(name, field.type, v));
    // A uuid is compared as text: a value that is no uuid then matches nothing, as in Neutron.
    const column = field.type === "uuid" ? `${field.sql(resource.alias)}::text` : field.sql(resource.alias);
    const cast = field.type === "uuid" ? "::text[]" : `${CASTS[field.type]}[]`;
    conditions.push(`${column} = ANY(${params.add(typed, cast)})`);
  }
  return conditions;
}

/** A list's statement parts and how to read its rows back. */
export interface ListPlan {
  /** Every condition: the list's own and the query's filters and page. */
  where: string;
  /** ORDER BY … [LIMIT …]. */
  order: string;
  /** The page's rows in order, and whether more follow (a limit was given and exceeded). */
  page<T>(rows: T[]): { items: T[]; hasMore: boolean };
}

interface SortKey {
  name: string;
  field: Field;
  descending: boolean;
}

/**
 * The plan of a list of `resource`: `where` are the list's own conditions (visibility, its
 * request's fields) whose parameters are in `params`; the query adds filters, an order (the
 * query's sort keys then the id; by default the resource's defaultOrder, then the id) and a page (limit, marker,
 * page_reverse). A marker is looked up with the list's conditions: one the caller cannot see is
 * not_found, as in Neutron.
 */
export async function planList(
  q: Queryable,
  resource: ListedResource,
  query: ListQuery | undefined,
  where: string[],
  params: SqlParams,
): Promise<ListPlan> {
  const a = resource.alias;
  const conditions = [...where, ...(query ? filterConditions(resource, query, params) : [])];
  const keys: SortKey[] = [];
  for (const s of query?.sorts ?? []) {
    const field = resource.fields[s.field];
    if (!field || field.unsortable || field.filter) {
      throw invalidInput(`${s.field} is an invalid attribute for sort_key`);
    }
    keys.push({ name: s.field, field, descending: s.descending });
  }
  if (!keys.length) {
    for (const name of resource.defaultOrder ?? ["created_at"]) {
      keys.push({ name, field: resource.fields[name]!, descending: false });
    }
  }
  keys.push({ name: "id", field: resource.fields.id!, descending: keys.at(-1)?.descending ?? false });
  const reversed = Boolean(query?.pageReverse);
  const direction = (k: SortKey) => (k.descending !== reversed ? "DESC" : "ASC");

  if (query?.marker) {
    const marker = await markerValues(q, resource, query.marker, keys, conditions, params);
    // Rows after the marker in this order: (k1 > m1) OR (k1 = m1 AND k2 > m2) OR …
    const after = keys.map((k, i) => {
      const equal = keys.slice(0, i).map((e, j) => `${e.field.sql(a)} = ${marker[j]}`);
      const beyond = `${k.field.sql(a)} ${direction(k) === "DESC" ? "<" : ">"} ${marker[i]}`;
      return `(${[...equal, beyond].join(" AND ")})`;
    });
    conditions.push(`(${after.join(" OR ")})`);
  }
  const limit = query?.limit ?? 0;
  if (limit < 0) throw invalidInput(`Invalid input for operation: limit ${limit} is negative.`);
  const order = `ORDER BY ${keys.map((k) => `${k.field.sql(a)} ${direction(k)}`).join(", ")}${limit ? ` LIMIT ${limit + 1}` : ""}`;
  return {
    where: conditions.length ? conditions.join(" AND ") : "true",
    order,
    page<T>(rows: T[]) {
      const hasMore = limit > 0 && rows.length > limit;
      const items = hasMore ? rows.slice(0, limit) : rows;
      return { items: reversed ? [...items].reverse() : items, hasMore };
    },
  };
}

/** The marker's sort values as typed placeholders, or not_found when it is not in the list. */
async function markerValues(
  q: Queryable,
  resource: ListedResource,
  marker: string,
  keys: SortKey[],
  conditions: string[],
  params: SqlParams,
): Promise<string[]> {
  const missing = () => notFound(`${resource.what} ${marker} could not be found`);
  if (!isUuid(marker)) throw missing();
  const a = resource.alias;
  const lookup = new SqlParams();
  lookup.addAll(params.values);
  const id = lookup.add(marker.toLowerCase(), "::uuid");
  // As text, cast back below: a timestamp keeps its microseconds.
  const [row] = await q.query(
    `SELECT ${keys.map((k, i) => `(${k.field.sql(a)})::text AS k${i}`).join(", ")}
     FROM ${resource.table} ${a} WHERE ${a}.id = ${id}${conditions.length ? ` AND ${conditions.join(" AND ")}` : ""}`,
    lookup.values,
  );
  if (!row) throw missing();
  return keys.map((k, i) => params.add(row[`k${i}`], CASTS[k.field.type]));
}
