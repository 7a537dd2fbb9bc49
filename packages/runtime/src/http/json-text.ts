// What a REST edge checks in a JSON body's text before JSON.parse sees it: nesting depth (a body of
// 5,000 `[` must not reach a recursive walk, a schema check or JSON.stringify of it), and string
// contents no store can keep: NUL (PostgreSQL's text refuses it) and unpaired UTF-16 surrogates
// (not characters: PostgreSQL's json refuses them, protobuf's UTF-8 cannot carry them). One linear
// pass over the text, no recursion; in JSON both can only arrive as \u escapes once the bytes were
// decoded as strict UTF-8.
import { StratusError } from "../errors.js";

/** The deepest nesting of arrays and objects a REST body may have. */
export const MAX_JSON_DEPTH = 32;

const BACKSLASH = 0x5c;
const QUOTE = 0x22;
const LOWER_U = 0x75;

/**
 * Throws invalid_input when `text` nests deeper than `maxDepth` or holds a \u0000 or an unpaired
 * surrogate escape inside a string. Anything else malformed is left to JSON.parse.
 */
export function checkJsonText(text: string, maxDepth = MAX_JSON_DEPTH): void {
  let depth = 0;
  let inString = false;
  const n = text.length;
  for (let i = 0; i < n; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === QUOTE) inString = false;
      else if (c === BACKSLASH) {
        if (text.charCodeAt(i + 1) !== LOWER_U) {
          i++; // an escaped character: \" \\ \n …
          continue;
        }
        const unit = hex4(text, i + 2);
        if (unit === 0) throw new StratusError("invalid_input", NUL_MESSAGE);
        if (unit >= 0xdc00 && unit <= 0xdfff) throw new StratusError("invalid_input", SURROGATE_MESSAGE);
        if (unit >= 0xd800 && unit <= 0xdbff) {
          const low =
            text.charCodeAt(i + 6) === BACKSLASH && text.charCodeAt(i + 7) === LOWER_U
              ? hex4(text, i + 8)
              : -1;
          if (low < 0xdc00 || low > 0xdfff) throw new StratusError("invalid_input", SURROGATE_MESSAGE);
          i += 6; // the pair's low half
        }
        i += 5;
      }
      continue;
    }
    if (c === QUOTE) inString = true;
    else if (c === 0x5b || c === 0x7b) {
      if (++depth > maxDepth) {
        throw new StratusError("invalid_input", `Malformed request body: nested more than ${maxDepth} deep.`);
      }
    } else if (c === 0x5d || c === 0x7d) depth--;
  }
}

const NUL_MESSAGE =
  "Invalid input: the request body holds a NUL character (\\u0000), which cannot be stored.";
const SURROGATE_MESSAGE =
  "Invalid input: the request body holds an unpaired UTF-16 surrogate escape, which is not a character.";

/** The code unit of four hex digits at `at`, or -1 when they are not four hex digits. */
function hex4(text: string, at: number): number {
  let v = 0;
  for (let k = at; k < at + 4; k++) {
    const c = text.charCodeAt(k);
    const d =
      c >= 0x30 && c <= 0x39
        ? c - 0x30
        : c >= 0x41 && c <= 0x46
          ? c - 55
          : c >= 0x61 && c <= 0x66
            ? c - 87
            : -1;
    if (d < 0) return -1;
    v = v * 16 + d;
  }
  return v;
}
