// Simulated hosts: COMPUTE_HOSTS="rack1-[1-4],rack2-[1-4]" expands to eight host names, so one
// process can stand in for a large cloud.

/** Expands "a-[1-3],b" into ["a-1", "a-2", "a-3", "b"]; throws on a malformed pattern. */
export function expandHostPattern(pattern: string): string[] {
  const names: string[] = [];
  for (const part of pattern
    .split(",")
    .map((p) => p.trim())
    .filter(Boolean)) {
    const m = /^([A-Za-z0-9._-]*)\[(\d+)-(\d+)\]([A-Za-z0-9._-]*)$/.exec(part);
    if (m) {
      const [, prefix, from, to, suffix] = m as unknown as [string, string, string, string, string];
      const a = Number(from);
      const b = Number(to);
      if (b < a) throw new Error(`host range ${part} runs backwards`);
      if (b - a >= 100_000) throw new Error(`host range ${part} is too large`);
      for (let i = a; i <= b; i++) names.push(`${prefix}${i}${suffix}`);
    } else if (/^[A-Za-z0-9._-]+$/.test(part)) {
      names.push(part);
    } else {
      throw new Error(`"${part}" is not a host name or a name-[from-to] range`);
    }
  }
  if (new Set(names).size !== names.length) throw new Error("host names repeat");
  return names;
}
