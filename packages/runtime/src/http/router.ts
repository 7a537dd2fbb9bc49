// A tiny router: literal segments and :params; each route may carry a gate that the caller's
// admits() decides on (the compute API gates routes by microversion). A path that exists for
// another method answers method_not_allowed.

export type MatchResult<H> =
  | { kind: "found"; handler: H; params: Record<string, string> }
  | { kind: "method_not_allowed"; allowed: string[] }
  | { kind: "not_found" };

interface Route<H, G> {
  method: string;
  pattern: string[];
  handler: H;
  gate: G | undefined;
}

export class PathRouter<H, G = never> {
  private readonly routes: Route<H, G>[] = [];

  add(method: string, path: string, handler: H, gate?: G): this {
    this.routes.push({ method, pattern: path.split("/").filter(Boolean), handler, gate });
    return this;
  }

  /** First segments of every route. */
  collections(): Set<string> {
    return new Set(this.routes.map((r) => r.pattern[0]!).filter((s) => !s.startsWith(":")));
  }

  /** The route for method and path; routes whose gate admits() refuses are skipped. */
  match(method: string, segments: string[], admits?: (gate: G) => boolean): MatchResult<H> {
    const allowed: string[] = [];
    for (const route of this.routes) {
      if (route.gate !== undefined && admits && !admits(route.gate)) continue;
      const params = matchPattern(route.pattern, segments);
      if (!params) continue;
      if (route.method === method) return { kind: "found", handler: route.handler, params };
      allowed.push(route.method);
    }
    return allowed.length ? { kind: "method_not_allowed", allowed } : { kind: "not_found" };
  }
}

function matchPattern(pattern: string[], segments: string[]): Record<string, string> | undefined {
  if (pattern.length !== segments.length) return undefined;
  const params: Record<string, string> = {};
  for (let i = 0; i < pattern.length; i++) {
    const p = pattern[i]!;
    const s = segments[i]!;
    if (p.startsWith(":")) params[p.slice(1)] = s;
    else if (p !== s) return undefined;
  }
  return params;
}
