// One Networking API resource's routes from a spec: the collection and member paths, Neutron's
// envelopes ({"network": {...}} / {"networks": [...]}), body attributes checked against the
// resource's attribute table (unknown, read-only and ill-typed attributes are 400s before any
// owner is asked), `fields`, filters, sorting and pagination (the owner's ListQuery) with
// <collection>_links. The owner decides everything else; its errors become NeutronErrors.
import type { MessageInitShape } from "@bufbuild/protobuf";
import type { Timestamp } from "@bufbuild/protobuf/wkt";
import type { ListQuerySchema } from "@stratus/contracts/network/v1";
import { unstorableText } from "@stratus/runtime";
import { badRequest } from "./faults.js";
import type { NetRequest, NetRouter, RestResponse } from "./router.js";

export type ListQueryInit = MessageInitShape<typeof ListQuerySchema>;

/** The most items one list answer carries when no smaller limit is asked. */
export const MAX_LIMIT = 1000;

/** Query parameters that are not filters. */
const RESERVED_QUERY = new Set(["fields", "sort_key", "sort_dir", "limit", "marker", "page_reverse"]);

export type AttrType =
  | "string"
  | "string_or_null"
  | "bool"
  | "int"
  | "int_or_null"
  | "uuid"
  | "uuid_or_null"
  | "string_list"
  | "object_list"
  | "object_or_null";

export interface Attr {
  type: AttrType;
  /** Accepted in a create body. */
  post?: boolean;
  /** Accepted in an update body. */
  put?: boolean;
  /** Required in a create body. */
  required?: boolean;
  /** Longest accepted string (Neutron's db sizes; 255 when unset). */
  max?: number;
}

export type Attrs = Record<string, Attr>;

export interface ResourceSpec<T> {
  /** "network" */
  singular: string;
  /** "networks" (the path segment and the list envelope) */
  collection: string;
  /** The body attributes a create or an update may carry. */
  attrs: Attrs;
  list?: (req: NetRequest, query: ListQueryInit) => Promise<{ items: T[]; hasMore: boolean }>;
  get?: (req: NetRequest, id: string) => Promise<T>;
  create?: (req: NetRequest, body: Record<string, unknown>) => Promise<T>;
  update?: (req: NetRequest, id: string, body: Record<string, unknown>) => Promise<T>;
  remove?: (req: NetRequest, id: string) => Promise<void>;
  /** The Networking API's view of one item, as the caller may see it. */
  view: (req: NetRequest, item: T) => Record<string, unknown>;
  /** The item's id (for pagination links). */
  id: (item: T) => string;
}

export function registerResource<T>(router: NetRouter, spec: ResourceSpec<T>): void {
  const base = `/${spec.collection}`;
  const member = `${base}/:id`;
  const one = (req: NetRequest, item: T, status = 200): RestResponse => ({
    status,
    body: { [spec.singular]: pickFields(req, spec.view(req, item)) },
  });
  if (spec.list) {
    const list = spec.list;
    router.add("GET", base, async (req) => {
      const query = listQuery(req);
      const { items, hasMore } = await list(req, query);
      const body: Record<string, unknown> = {
        [spec.collection]: items.map((i) => pickFields(req, spec.view(req, i))),
      };
      const links = pageLinks(req, spec.collection, items.map(spec.id), query, hasMore);
      if (links.length) body[`${spec.collection}_links`] = links;
      return { status: 200, body };
    });
  }
  if (spec.create) {
    const create = spec.create;
    router.add("POST", base, async (req) =>
      one(req, await create(req, resourceBody(req, spec, "post")), 201),
    );
  }
  if (spec.get) {
    const get = spec.get;
    router.add("GET", member, async (req) => one(req, await get(req, req.params.id!)));
  }
  if (spec.update) {
    const update = spec.update;
    router.add("PUT", member, async (req) =>
      one(req, await update(req, req.params.id!, resourceBody(req, spec, "put"))),
    );
  }
  if (spec.remove) {
    const remove = spec.remove;
    router.add("DELETE", member, async (req) => {
      await remove(req, req.params.id!);
      return { status: 204 };
    });
  }
}

/** The `fields` asked for (repeatable), or undefined for all. */
export function askedFields(req: NetRequest): string[] | undefined {
  const fields = req.query.getAll("fields").filter(Boolean);
  return fields.length ? fields : undefined;
}

/** Only the attributes named by `fields` (all when none are named). */
export function pickFields(req: NetRequest, view: Record<string, unknown>): Record<string, unknown> {
  const fields = askedFields(req);
  if (!fields) return view;
  const out: Record<string, unknown> = {};
  for (const f of fields) if (f in view) out[f] = view[f];
  return out;
}

function queryValue(name: string, v: string): string {
  const why = v.length > 1024 ? "is longer than 1024 characters" : unstorableText(v);
  if (why) throw badRequest(`Invalid input for ${name}. Reason: ${why}.`);
  return v;
}

/** Neutron's filters, sort_key/sort_dir and limit/marker/page_reverse as the owner's ListQuery. */
export function listQuery(req: NetRequest): ListQueryInit {
  const filters = new Map<string, string[]>();
  for (const [name, value] of req.query) {
    if (RESERVED_QUERY.has(name)) continue;
    queryValue(name, name);
    const values = filters.get(name) ?? [];
    values.push(queryValue(name, value));
    filters.set(name, values);
  }
  const keys = req.query.getAll("sort_key").map((k) => queryValue("sort_key", k));
  const dirs = req.query.getAll("sort_dir").map((d) => queryValue("sort_dir", d));
  if (dirs.length && dirs.length !== keys.length) {
    throw badRequest("The number of sort_keys and sort_dirs must be same");
  }
  const sorts = keys.map((field, i) => {
    const dir = dirs[i] ?? "asc";
    if (dir !== "asc" && dir !== "desc") {
      throw badRequest(`${dir} is invalid value for sort_dir, valid value is 'asc' and 'desc'`);
    }
    return { field, descending: dir === "desc" };
  });
  const rawLimit = req.query.get("limit");
  let limit = MAX_LIMIT;
  if (rawLimit !== null && rawLimit !== "") {
    if (!/^-?\d{1,12}$/.test(rawLimit) || Number(rawLimit) < 0) {
      throw badRequest(`Limit must be an integer 0 or greater and not '${rawLimit.slice(0, 64)}'`);
    }
    // Neutron's 0 means no limit; the answer is still bounded by MAX_LIMIT.
    limit = Number(rawLimit) === 0 ? MAX_LIMIT : Math.min(Number(rawLimit), MAX_LIMIT);
  }
  const marker = req.query.get("marker");
  const pageReverse = req.query.get("page_reverse");
  return {
    filters: [...filters].map(([field, values]) => ({ field, values })),
    sorts,
    limit,
    marker: marker ? queryValue("marker", marker) : "",
    pageReverse: pageReverse !== null && ["true", "1"].includes(pageReverse.toLowerCase()),
  };
}

/**
 * <collection>_links: "next" when more follow in the paging direction, "previous" when the page
 * started at a marker (in page_reverse the two swap, as the page runs backwards). Given without
 * an explicit limit only when the answer was cut at MAX_LIMIT (the client follows "next").
 */
function pageLinks(
  req: NetRequest,
  collection: string,
  ids: string[],
  query: ListQueryInit,
  hasMore: boolean,
) {
  const explicitLimit = req.query.get("limit");
  const limited = Boolean(explicitLimit) && explicitLimit !== "0";
  if (!ids.length || (!limited && !hasMore)) return [];
  const href = (marker: string, reverse: boolean) => {
    const q = new URLSearchParams(req.query);
    q.delete("marker");
    q.delete("page_reverse");
    q.set("limit", String(query.limit));
    q.set("marker", marker);
    if (reverse) q.set("page_reverse", "True");
    return `${req.baseUrl}/${collection}?${q.toString()}`;
  };
  const forwardMore = query.pageReverse ? Boolean(query.marker) : hasMore;
  const backwardMore = query.pageReverse ? hasMore : Boolean(query.marker);
  const links: { href: string; rel: string }[] = [];
  if (forwardMore) links.push({ href: href(ids.at(-1)!, false), rel: "next" });
  if (backwardMore) links.push({ href: href(ids[0]!, true), rel: "previous" });
  return links;
}

/** The resource's body of a create or an update, its attributes checked and converted. */
export function resourceBody<T>(
  req: NetRequest,
  spec: ResourceSpec<T>,
  op: "post" | "put",
): Record<string, unknown> {
  const body = req.body;
  if (body === undefined || body === null) throw badRequest("Resource body required");
  if (typeof body !== "object" || Array.isArray(body)) throw badRequest("Body contains invalid data");
  if (spec.collection in body && !(spec.singular in body)) {
    throw badRequest("Bulk operation not supported");
  }
  const inner = (body as Record<string, unknown>)[spec.singular];
  if (inner === undefined) throw badRequest(`Unable to find '${spec.singular}' in request body`);
  if (inner === null || typeof inner !== "object" || Array.isArray(inner)) {
    throw badRequest("Body contains invalid data");
  }
  return checkAttrs(inner as Record<string, unknown>, spec.attrs, op);
}

export function checkAttrs(given: Record<string, unknown>, attrs: Attrs, op: "post" | "put") {
  const unknown = Object.keys(given).filter((k) => !(k in attrs));
  if (unknown.length) throw badRequest(`Unrecognized attribute(s) '${unknown.join(", ")}'`);
  const out: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(given)) {
    const attr = attrs[name]!;
    if (op === "post" && !attr.post) throw badRequest(`Attribute '${name}' not allowed in POST`);
    if (op === "put" && !attr.put) throw badRequest(`Cannot update read-only attribute ${name}`);
    out[name] = convert(name, value, attr);
  }
  if (op === "post") {
    for (const [name, attr] of Object.entries(attrs)) {
      if (attr.required && out[name] === undefined) {
        throw badRequest(`Failed to parse request. Required attribute '${name}' not specified`);
      }
    }
  }
  return out;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

function show(v: unknown): string {
  const s = typeof v === "string" ? v : (JSON.stringify(v) ?? "None");
  return s.length > 100 ? `${s.slice(0, 100)}…` : s;
}

function convert(name: string, v: unknown, attr: Attr): unknown {
  const bad = (reason: string) => badRequest(`Invalid input for ${name}. Reason: ${reason}.`);
  const text = (s: unknown): string => {
    if (typeof s !== "string") throw bad(`'${show(s)}' is not a valid string`);
    const max = attr.max ?? 255;
    if (s.length > max) throw bad(`'${show(s)}' exceeds maximum length of ${max}`);
    const why = unstorableText(s);
    if (why) throw bad(`'${show(s)}' ${why}`);
    return s;
  };
  const nullable = attr.type.endsWith("_or_null");
  if (v === null) {
    if (nullable) return null;
    throw bad(
      `'None' is not a valid ${attr.type === "bool" ? "boolean" : attr.type.replace(/_list$/, " list")}`,
    );
  }
  switch (attr.type) {
    case "string":
    case "string_or_null":
      return text(v);
    case "uuid":
    case "uuid_or_null":
      if (typeof v !== "string" || !UUID.test(v)) throw bad(`'${show(v)}' is not a valid UUID`);
      return v.toLowerCase();
    case "bool":
      if (typeof v === "boolean") return v;
      if (v === 0 || v === 1) return v === 1;
      if (typeof v === "string" && ["true", "false", "1", "0"].includes(v.toLowerCase())) {
        return v.toLowerCase() === "true" || v === "1";
      }
      throw bad(`'${show(v)}' cannot be converted to boolean`);
    case "int":
    case "int_or_null": {
      const n = typeof v === "string" && /^-?\d{1,10}$/.test(v) ? Number(v) : v;
      if (typeof n !== "number" || !Number.isSafeInteger(n) || Math.abs(n) > 2 ** 31 - 1) {
        throw bad(`'${show(v)}' is not an integer`);
      }
      return n;
    }
    case "string_list":
      if (!Array.isArray(v) || v.length > 1000) throw bad(`'${show(v)}' is not a list`);
      return v.map(text);
    case "object_list":
      if (!Array.isArray(v) || v.length > 1000) throw bad(`'${show(v)}' is not a list`);
      for (const o of v) {
        if (o === null || typeof o !== "object" || Array.isArray(o))
          throw bad(`'${show(o)}' is not a dictionary`);
      }
      return v;
    case "object_or_null":
      if (typeof v !== "object" || Array.isArray(v)) throw bad(`'${show(v)}' is not a dictionary`);
      return v;
  }
}

/** Neutron's timestamps: "2026-11-25T06:33:35Z". */
export function neutronTime(ts: Timestamp | undefined): string | null {
  if (!ts) return null;
  return `${new Date(Number(ts.seconds) * 1000).toISOString().slice(0, 19)}Z`;
}

/** A string field of a list element: present and a string, or a 400. */
export function textOf(
  where: string,
  o: Record<string, unknown>,
  key: string,
  opts: { optional?: boolean } = {},
) {
  const v = o[key];
  if (v === undefined || v === null) {
    if (opts.optional) return "";
    throw badRequest(`Invalid input for ${where}. Reason: '${key}' is required.`);
  }
  if (typeof v !== "string" || v.length > 255 || unstorableText(v)) {
    throw badRequest(`Invalid input for ${where}. Reason: '${show(v)}' is not a valid string.`);
  }
  return v;
}

/** Only the keys named may appear in a list element of a body. */
export function onlyKeys(where: string, o: Record<string, unknown>, keys: string[]): void {
  const extra = Object.keys(o).filter((k) => !keys.includes(k));
  if (extra.length)
    throw badRequest(`Invalid input for ${where}. Reason: Unrecognized attribute(s) '${extra.join(", ")}'.`);
}
