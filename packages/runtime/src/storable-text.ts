// The one rule for text that crosses the mesh's edges: what every store and wire can keep as it
// was sent. PostgreSQL's text and json refuse NUL; an unpaired UTF-16 surrogate is no character
// (protobuf's UTF-8 cannot carry it, PostgreSQL's json refuses it). The REST edges and the RPC
// pipeline refuse such text before any handler sees it.

declare global {
  interface String {
    /** ES2024: false when the string holds an unpaired surrogate. */
    isWellFormed(): boolean;
  }
}

/** Why `s` cannot be stored as it is, or undefined when it can. */
export function unstorableText(s: string): string | undefined {
  if (s.includes("\0")) return "must not contain NUL characters";
  if (!s.isWellFormed()) return "must not contain unpaired UTF-16 surrogates";
  return undefined;
}

export const isStorableText = (s: string): boolean => unstorableText(s) === undefined;
