// A tiny router for the compute API: literal segments and :params, routes gated by microversion.
// A path that exists for another method answers 405; a path that exists only at other versions
// answers 404 (Nova's "looks not implemented").
import type { IncomingHttpHeaders } from "node:http";
import { type MatchResult, PathRouter, type RestResponse } from "@stratus/runtime/http";
import { type ApiVersion, at, type Change } from "../microversion.js";

export type { RestResponse };

export interface Caller {
  requestId: string;
  userId: string;
  projectId: string;
  /** Role names on the project, implied roles included (admin ⇒ member ⇒ reader). */
  roles: readonly string[];
  /** The admin role: Nova's admin acts on every project's resources. */
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

export type Handler = (req: RestRequest) => Promise<RestResponse> | RestResponse;

interface Gate {
  since?: Change;
  until?: Change;
}

export class Router {
  private readonly routes = new PathRouter<Handler, Gate>();

  /** `since`: the route exists from that change on; `until`: it disappears at that change. */
  add(method: string, path: string, handler: Handler, gate: Gate = {}): this {
    this.routes.add(method, path, handler, gate);
    return this;
  }

  /** First segments of every route: what cannot be a project id. */
  collections(): Set<string> {
    return this.routes.collections();
  }

  match(method: string, segments: string[], version: ApiVersion): MatchResult<Handler> {
    return this.routes.match(
      method,
      segments,
      (gate) => (!gate.since || at(version, gate.since)) && (!gate.until || !at(version, gate.until)),
    );
  }
}
