// The Networking API's route table: resources register their routes under /v2.0 (paths given
// without it, e.g. "/networks/:id"); a path that exists for another method answers 405, any other
// path 404.
import type { IncomingHttpHeaders } from "node:http";
import { type MatchResult, PathRouter, type RestResponse } from "@stratus/runtime/http";
import type { Caller } from "../http/router.js";

export type { Caller, RestResponse };

export interface NetRequest {
  method: string;
  /** Decoded path segments after /v2.0 (a trailing ".json" removed). */
  segments: string[];
  params: Record<string, string>;
  query: URLSearchParams;
  headers: IncomingHttpHeaders;
  /** Parsed JSON body, undefined when there was none. */
  body: unknown;
  caller: Caller;
  /** http://host:port/v2.0 (links are built from it). */
  baseUrl: string;
}

export type NetHandler = (req: NetRequest) => Promise<RestResponse> | RestResponse;

export class NetRouter {
  private readonly routes = new PathRouter<NetHandler>();

  add(method: string, path: string, handler: NetHandler): this {
    this.routes.add(method, path, handler);
    return this;
  }

  match(method: string, segments: string[]): MatchResult<NetHandler> {
    return this.routes.match(method, segments);
  }
}
