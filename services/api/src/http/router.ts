// A tiny router for the compute API: literal segments and :params, routes gated by microversion.
// A path that exists for another method answers 405; a path that exists only at other versions
// answers 404 (Nova's "looks not implemented").
import type { IncomingHttpHeaders } from "node:http";
import { type ApiVersion, at, type Change } from "../microversion.js";

export interface Caller {
  requestId: string;
  userId: string;
  projectId: string;
  isAdmin: boolean;
}

export interface RestRequest {
  method: string;
  /** Decoded path segments after /v2.1 and the optional project id. */
  segments: string[];
  params: Record<string, string>;
  query: URLSearchParams;
  headers: IncomingHttpHeaders;
  version: ApiVersion;
  /** Parsed JSON body, undefined when there was none. */
  body: unknown;
  caller: Caller;
  /** http://host:port/v2.1 (links are built from it). */
  baseUrl: string;
  /** http://host:port (bookmark links). */
  hostUrl: string;
}

export interface RestResponse {
  status: number;
  body?: unknown;
  /** The body already serialized as JSON (instead of `body`). */
  json?: Buffer;
  headers?: Record<string, string>;
}

export type Handler = (req: RestRequest) => Promise<RestResponse> | RestResponse;

interface Route {
  method: string;
  pattern: string[];
  handler: Handler;
  since?: Change;
  until?: Change;
}

export type MatchResult =
  | { kind: "found"; handler: Handler; params: Record<string, string> }
  | { kind: "method_not_allowed"; allowed: string[] }
  | { kind: "not_found" };

export class Router {
  private readonly routes: Route[] = [];

  /** `since`: the route exists from that change on; `until`: it disappears at that change. */
  add(method: string, path: string, handler: Handler, gate: { since?: Change; until?: Change } = {}): this {
    this.routes.push({ method, pattern: path.split("/").filter(Boolean), handler, ...gate });
    return this;
  }

  /** First segments of every route: what cannot be a project id. */
  collections(): Set<string> {
    return new Set(this.routes.map((r) => r.pattern[0]!).filter((s) => !s.startsWith(":")));
  }

  match(method: string, segments: string[], version: ApiVersion): MatchResult {
    const allowed: string[] = [];
    for (const route of this.routes) {
      if (route.since && !at(version, route.since)) continue;
      if (route.until && at(version, route.until)) continue;
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
