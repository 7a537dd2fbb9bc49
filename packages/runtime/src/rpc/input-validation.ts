// The RPC pipeline's input stage: every request message, whatever its service, walked by its
// protobuf descriptor before the handler sees it. Text no store can keep (storable-text.ts: NUL,
// which every protocol carries; unpaired surrogates, which protobuf's decoding already refuses
// or replaces), strings longer than a bound, and repeated fields or maps with more entries than a
// bound are refused with invalid_input naming the field. Generic, so that no service can forget
// it; what a value means (an id that must be a uuid, a range) stays each service's own check.
import type { DescField, DescMessage } from "@bufbuild/protobuf";
import type { Interceptor } from "@connectrpc/connect";
import { parseConfig, rpcInputConfig } from "../config.js";
import { StratusError } from "../errors.js";
import { unstorableText } from "../storable-text.js";

export interface InputBounds {
  /** Longest string (UTF-16 code units) any field may hold, map keys included. */
  maxStringLength: number;
  /** Most entries of any repeated field or map. */
  maxEntries: number;
}

/** The bounds the environment sets (the defaults when it sets none). */
export function inputBoundsFromEnvironment(env: NodeJS.ProcessEnv = process.env): InputBounds {
  const c = parseConfig(rpcInputConfig, env);
  return { maxStringLength: c.RPC_MAX_STRING_LENGTH, maxEntries: c.RPC_MAX_ENTRIES };
}

/** The stage: unary requests are checked before the handler runs (the mesh has no streaming RPC). */
export function inputValidation(bounds: InputBounds): Interceptor {
  return (next) => (req) => {
    if (!req.stream) checkMessage(req.method.input, req.message as Record<string, unknown>, bounds);
    return next(req);
  };
}

/** What of a message type can hold something to check: strings, repeated fields, maps, messages. */
type Plan = DescField[];
const plans = new WeakMap<DescMessage, Plan>();

function planOf(desc: DescMessage): Plan {
  let plan = plans.get(desc);
  if (!plan) {
    plan = desc.fields.filter(
      (f) =>
        f.fieldKind === "list" ||
        f.fieldKind === "map" ||
        f.fieldKind === "message" ||
        (f.fieldKind === "scalar" && f.scalar === STRING),
    );
    plans.set(desc, plan);
  }
  return plan;
}

/** ScalarType.STRING (protobuf's field type number 9). */
const STRING = 9;

interface Pending {
  desc: DescMessage;
  message: Record<string, unknown>;
  path: string;
}

/**
 * Throws invalid_input for the first field of `message` (or of a message inside it) that breaks
 * the bounds. Iterative: a message nested as deep as the wire allows costs no stack. Paths are
 * spelled out only for a refusal and for nested messages.
 */
export function checkMessage(desc: DescMessage, message: Record<string, unknown>, bounds: InputBounds): void {
  const pending: Pending[] = [{ desc, message, path: "" }];
  const { maxStringLength, maxEntries } = bounds;
  const problem = (s: string) =>
    s.length > maxStringLength ? `is longer than ${maxStringLength} characters` : unstorableText(s);
  const refuse = (path: string, why: string): never => {
    throw new StratusError("invalid_input", `invalid ${desc.name}: field ${path} ${why}`);
  };
  for (let item = pending.pop(); item; item = pending.pop()) {
    const at = (field: DescField) => (item!.path ? `${item!.path}.${field.name}` : field.name);
    for (const field of planOf(item.desc)) {
      let v: unknown;
      if (field.oneof) {
        const chosen = item.message[field.oneof.localName] as { case?: string; value?: unknown } | undefined;
        if (chosen?.case !== field.localName) continue;
        v = chosen.value;
      } else v = item.message[field.localName];
      if (v === undefined || v === null) continue;
      switch (field.fieldKind) {
        case "scalar":
        case "message": {
          // A message field may be a wrapper type, which protobuf-es gives as its plain value.
          if (typeof v === "string") {
            const why = problem(v);
            if (why) refuse(at(field), why);
          } else if (field.fieldKind === "message" && typeof v === "object") {
            pending.push({ desc: field.message, message: v as Record<string, unknown>, path: at(field) });
          }
          break;
        }
        case "list": {
          const list = v as unknown[];
          if (list.length > maxEntries) refuse(at(field), `has more than ${maxEntries} entries`);
          if (field.listKind === "message") {
            for (let i = 0; i < list.length; i++) {
              const entry = list[i] as Record<string, unknown>;
              pending.push({ desc: field.message, message: entry, path: `${at(field)}[${i}]` });
            }
          } else if (field.listKind === "scalar" && field.scalar === STRING) {
            for (let i = 0; i < list.length; i++) {
              const why = problem(list[i] as string);
              if (why) refuse(`${at(field)}[${i}]`, why);
            }
          }
          break;
        }
        case "map": {
          const map = v as Record<string, unknown>;
          const keys = Object.keys(map);
          if (keys.length > maxEntries) refuse(at(field), `has more than ${maxEntries} entries`);
          const stringKeys = field.mapKey === STRING;
          const stringValues = field.mapKind === "scalar" && field.scalar === STRING;
          for (const k of keys) {
            const keyWhy = stringKeys ? problem(k) : undefined;
            if (keyWhy) refuse(`${at(field)} key`, keyWhy);
            const entry = map[k];
            const shown = () => `${at(field)}[${JSON.stringify(k.slice(0, 64))}]`;
            if (stringValues) {
              const why = problem(entry as string);
              if (why) refuse(shown(), why);
            } else if (field.mapKind === "message" && entry && typeof entry === "object") {
              pending.push({ desc: field.message, message: entry as Record<string, unknown>, path: shown() });
            }
          }
          break;
        }
      }
    }
  }
}
