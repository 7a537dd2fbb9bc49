// COMPUTE_PHYSNETS: which physical networks each simulated host reaches (its bridge mappings),
// as "glob=physnet[+physnet],..." e.g. "rack1-*=physnet-rack1,rack2-*=physnet-rack2". The first
// glob that matches a host wins; a host no glob matches reaches no physical network.

export interface PhysnetRule {
  glob: string;
  physnets: string[];
  regex: RegExp;
}

const NAME = /^[A-Za-z0-9._:-]+$/;

function globToRegex(glob: string): RegExp {
  const body = glob
    .split("")
    .map((c) => (c === "*" ? ".*" : c === "?" ? "." : c.replace(/[.+^${}()|[\]\\-]/g, "\\$&")))
    .join("");
  return new RegExp(`^${body}$`);
}

/** Parses the variable; throws with a message naming the bad part. */
export function parsePhysnets(spec: string): PhysnetRule[] {
  const rules: PhysnetRule[] = [];
  for (const part of spec
    .split(",")
    .map((p) => p.trim())
    .filter(Boolean)) {
    const eq = part.indexOf("=");
    if (eq <= 0) throw new Error(`"${part}" is not glob=physnet[+physnet]`);
    const glob = part.slice(0, eq).trim();
    if (!/^[A-Za-z0-9._*?-]+$/.test(glob)) throw new Error(`"${glob}" is not a host glob`);
    const physnets = part
      .slice(eq + 1)
      .split("+")
      .map((p) => p.trim())
      .filter(Boolean);
    for (const p of physnets) if (!NAME.test(p)) throw new Error(`"${p}" is not a physical network name`);
    rules.push({ glob, physnets: [...new Set(physnets)], regex: globToRegex(glob) });
  }
  return rules;
}

/** The physical networks of a host: those of the first matching rule, else none. */
export function physnetsFor(rules: PhysnetRule[], host: string): string[] {
  return rules.find((r) => r.regex.test(host))?.physnets ?? [];
}
