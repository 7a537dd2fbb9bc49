// Helpers shared by the handlers: links, timestamps, paging, validation with Nova's messages.
import type { Timestamp } from "@bufbuild/protobuf/wkt";
import { StratusError, unstorableText } from "@stratus/runtime";
import type { z } from "zod";
import type { Caller, RestRequest } from "../http/router.js";

export const UUID_RE = /^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$/i;
export const STRICT_UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
export const isUuidLike = (s: string) => UUID_RE.test(s);

/** Nova's max_limit: the most items one list answer carries. */
export const MAX_LIMIT = 1000;

export function links(req: RestRequest, collection: string, id: string) {
  const tail = `${collection}/${encodeURIComponent(id)}`;
  return [
    { rel: "self", href: `${req.baseUrl}/${tail}` },
    { rel: "bookmark", href: `${req.hostUrl}/${tail}` },
  ];
}

/** Nova's timestamps: "2026-11-25T06:33:35Z" (no fraction). */
export function isoTime(ts: Timestamp | Date | undefined): string | null {
  if (!ts) return null;
  // Whole seconds only: the fraction is dropped anyway (a list formats hundreds of these).
  const d = ts instanceof Date ? ts : new Date(Number(ts.seconds) * 1000);
  const s = d.toISOString();
  return s.length === 24 && s.endsWith("Z") ? `${s.slice(0, 19)}Z` : s.replace(/\.\d{3}Z$/, "Z");
}

export const invalid = (message: string) => new StratusError("invalid_input", message);

export function requireAdmin(caller: Caller, policy: string): void {
  if (!caller.isAdmin) {
    throw new StratusError("forbidden", `Policy doesn't allow ${policy} to be performed.`);
  }
}

/**
 * A query parameter's value (undefined when absent); 400 with Nova's query-schema message when
 * it is text no store can keep or longer than `max` characters, before any peer sees it.
 */
export function queryParam(req: RestRequest, name: string, max = 255): string | undefined {
  const v = req.query.get(name);
  if (v === null) return undefined;
  checkQueryValue(name, v, max);
  return v;
}

/** Every value of a repeated query parameter, each checked as queryParam checks one. */
export function queryParams(req: RestRequest, name: string, max = 255): string[] {
  const all = req.query.getAll(name);
  for (const v of all) checkQueryValue(name, v, max);
  return all;
}

function checkQueryValue(name: string, v: string, max: number): void {
  const why = v.length > max ? `is longer than ${max} characters` : unstorableText(v);
  if (why) throw invalid(`Invalid input for query parameters ${name}. Value: ${show(v)}. ${why}`);
}

/** ?limit= (non-negative integer, capped at max_limit) and ?marker=. */
export function paging(req: RestRequest): { limit: number; marker: string | undefined } {
  const rawLimit = req.query.get("limit");
  let limit = MAX_LIMIT;
  if (rawLimit !== null) {
    if (!/^\d{1,9}$/.test(rawLimit)) throw invalid("limit param must be an integer");
    limit = Math.min(Number(rawLimit), MAX_LIMIT);
  }
  // Any length: a list says itself when a marker is too long to name anything.
  const marker = queryParam(req, "marker", Number.POSITIVE_INFINITY);
  return { limit, marker };
}

/** The "next" link of a page that came back full. */
export function nextLink(req: RestRequest, collection: string, lastId: string, limit: number) {
  const q = new URLSearchParams(req.query);
  q.set("limit", String(limit));
  q.set("marker", lastId);
  return [{ rel: "next", href: `${req.baseUrl}/${collection}?${q.toString()}` }];
}

function valueAt(root: unknown, path: PropertyKey[]): unknown {
  let cur = root;
  for (const k of path) {
    if (cur === null || typeof cur !== "object") return undefined;
    cur = (cur as Record<PropertyKey, unknown>)[k];
  }
  return cur;
}

function show(v: unknown): string {
  try {
    const s = typeof v === "string" ? v : JSON.stringify(v);
    return s === undefined ? "None" : s.length > 200 ? `${s.slice(0, 200)}…` : s;
  } catch {
    return String(v);
  }
}

/** Parses with a zod schema; the first failure becomes Nova's schema message (400). */
export function validate<S extends z.ZodType>(schema: S, value: unknown, root = "body"): z.output<S> {
  const r = schema.safeParse(value);
  if (r.success) return r.data;
  const issue = r.error.issues[0]!;
  if (issue.code === "unrecognized_keys") {
    const names = issue.keys.map((k) => `'${k}'`).join(", ");
    throw invalid(
      `Additional properties are not allowed (${names} ${issue.keys.length > 1 ? "were" : "was"} unexpected)`,
    );
  }
  const path = issue.path;
  const value_ = valueAt(value, path);
  if (issue.code === "invalid_type" && value_ === undefined && path.length > 0) {
    const parent = path.slice(0, -1);
    const field = parent.length ? parent.map(String).join("/") : root;
    throw invalid(
      `Invalid input for field/attribute ${field}. Value: ${show(valueAt(value, parent))}. '${String(path[path.length - 1])}' is a required property`,
    );
  }
  const field = path.length ? path.map(String).join("/") : root;
  throw invalid(`Invalid input for field/attribute ${field}. Value: ${show(value_)}. ${issue.message}`);
}
