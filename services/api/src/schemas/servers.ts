// zod schemas for POST /servers, one per microversion range, built from the change table.
import { z } from "zod";
import { STRICT_UUID_RE } from "../handlers/common.js";
import { type ApiVersion, at, formatVersion } from "../microversion.js";

const uuid = z.string().regex(STRICT_UUID_RE, "is not a 'uuid'");
const tag = z
  .string()
  .min(1)
  .max(60)
  .regex(/^[^,/]*$/, "must not contain ',' or '/'");
const ip = z.union([z.ipv4(), z.ipv6()], { error: "is not a valid IP address" });
/** The most any count may be: what every layer carries (an int32 on the wire). */
const MAX_INT32 = 2 ** 31 - 1;
const count = z.union([
  z.number().int().min(1).max(MAX_INT32, `is greater than the maximum of ${MAX_INT32}`),
  z
    .string()
    .regex(/^[1-9]\d{0,8}$/, "is not a positive integer")
    .transform(Number),
]);
const TRUE_WORDS = ["True", "TRUE", "true", "1", "ON", "On", "on", "YES", "Yes", "yes"] as const;
const FALSE_WORDS = ["False", "FALSE", "false", "0", "OFF", "Off", "off", "NO", "No", "no"] as const;
/** Nova's parameter_types.boolean: a JSON boolean or one of its words. */
const novaBoolean = z
  .union([z.boolean(), z.enum([...TRUE_WORDS, ...FALSE_WORDS])], { error: "is not a boolean" })
  .transform((v) => v === true || (TRUE_WORDS as readonly unknown[]).includes(v));
const name = z
  .string()
  .min(1)
  .max(255)
  .regex(/^\S(?:[\s\S]*\S)?$/, "has leading or trailing whitespace");
const hints = z.record(z.string().max(255), z.union([z.string().max(1024), z.array(z.string().max(1024))]));

function networkEntry(v: ApiVersion) {
  // Tags on NICs: 2.32–2.36, lost at 2.37 (a bug upstream kept for compatibility), back at 2.42.
  const tagged = at(v, "nicTags") && (!at(v, "getMeANetwork") || at(v, "nicTagsRestored"));
  return z.strictObject({
    uuid: (at(v, "getMeANetwork") ? uuid : z.string().max(255)).optional(),
    port: z.union([uuid, z.null()]).optional(),
    fixed_ip: ip.optional(),
    ...(tagged ? { tag: tag.optional() } : {}),
  });
}

function networks(v: ApiVersion) {
  const list = z.array(networkEntry(v));
  if (!at(v, "getMeANetwork")) return list.optional();
  return z.union([z.literal("auto"), z.literal("none"), list], {
    error: "is not valid under any of the given schemas",
  });
}

export function serverCreateSchemaFor(v: ApiVersion) {
  const server = z.strictObject({
    name,
    imageRef: z.string().max(255).optional(),
    flavorRef: z.union([z.string().min(1).max(255), z.number().int().min(0)]).transform(String),
    min_count: count.optional(),
    max_count: count.optional(),
    networks: networks(v),
    metadata: z.record(z.string().min(1).max(255), z.string().max(255)).optional(),
    user_data: z.string().max(65535).optional(),
    key_name: z.string().min(1).max(255).optional(),
    availability_zone: z.string().min(1).max(255).optional(),
    security_groups: z.array(z.strictObject({ name: z.string().min(1).max(255) })).optional(),
    config_drive: z.union([z.boolean(), z.string().max(10)]).optional(),
    adminPass: z.string().max(255).optional(),
    accessIPv4: z.union([z.ipv4(), z.literal("")]).optional(),
    accessIPv6: z.union([z.ipv6(), z.literal("")]).optional(),
    "OS-DCF:diskConfig": z.enum(["AUTO", "MANUAL"]).optional(),
    return_reservation_id: novaBoolean.optional(),
    ...(at(v, "serverDescription")
      ? { description: z.union([z.string().max(255), z.null()]).optional() }
      : {}),
  });
  return z.strictObject({
    server,
    "os:scheduler_hints": hints.optional(),
    "OS-SCH-HNT:scheduler_hints": hints.optional(),
  });
}

export type ServerCreateBody = z.output<ReturnType<typeof serverCreateSchemaFor>>;
export interface NetworkEntry {
  uuid?: string | undefined;
  port?: string | null | undefined;
  fixed_ip?: string | undefined;
  tag?: string | undefined;
}

export type RequestedNetworks = "auto" | "none" | NetworkEntry[] | undefined;

const cache = new Map<string, ReturnType<typeof serverCreateSchemaFor>>();

export function serverCreateSchema(v: ApiVersion) {
  const key = formatVersion(v);
  let s = cache.get(key);
  if (!s) {
    s = serverCreateSchemaFor(v);
    cache.set(key, s);
  }
  return s;
}
