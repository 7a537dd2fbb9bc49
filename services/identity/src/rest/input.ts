// Reading what a client sent: bodies checked with zod (a failure is Keystone's 400 naming the
// field), query filters, and the text rules every stored string follows.
import { invalidInput } from "@stratus/runtime";
import { z } from "zod";

/** A string PostgreSQL can store (no NUL) of at most `max` characters. */
export const text = (max = 255) =>
  z
    .string()
    .max(max)
    .refine((s) => !s.includes("\0"), "must not contain NUL characters");

export const name = text(255).refine((s) => s.trim().length > 0, "must not be empty");
export const description = text(10_000);
export const tags = z.array(text(255)).max(80);

/** The value at `key` of the body, parsed; Keystone's 400 when absent or invalid. */
export function parseBody<T>(schema: z.ZodType<T>, body: unknown, key: string): T {
  if (typeof body !== "object" || body === null || Array.isArray(body) || !(key in body)) {
    throw invalidInput(`Expecting to find ${key} in request body.`);
  }
  return parse(schema, (body as Record<string, unknown>)[key], key);
}

export function parse<T>(schema: z.ZodType<T>, value: unknown, what: string): T {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const issue = result.error.issues[0]!;
  const field = [what, ...issue.path.map(String)].join(".");
  throw invalidInput(`Invalid input for field '${field}': ${issue.message}`);
}

/** A text filter from the query string, undefined when absent. */
export function queryText(query: URLSearchParams, key: string): string | undefined {
  const v = query.get(key);
  if (v === null) return undefined;
  return parse(text(255), v, key);
}

/** A boolean filter: absent is undefined, "false", "0", "no" and "off" are false, else true. */
export function queryBool(query: URLSearchParams, key: string): boolean | undefined {
  const v = query.get(key);
  if (v === null) return undefined;
  return !["false", "0", "no", "off"].includes(v.toLowerCase());
}

/** A flag such as ?effective or ?include_names=true. */
export function queryFlag(query: URLSearchParams, key: string): boolean {
  return queryBool(query, key) ?? false;
}

/** The fields of `obj` that are not among `known`: Keystone keeps them as extra attributes. */
export function extras(obj: Record<string, unknown>, known: readonly string[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(obj)) if (!known.includes(k) && k !== "links") out[k] = v;
  return out;
}
