// The Keystone v3 REST edge: request id, body limit, routing under /v3, the caller's
// X-Auth-Token validated before any route that needs it, HEAD served by the GET route without its
// body, and Keystone's error bodies (401 with WWW-Authenticate: Keystone uri="…").
import type { IncomingHttpHeaders, IncomingMessage } from "node:http";
import {
  acceptRequestId,
  type ListenerTls,
  type Logger,
  REQUEST_ID_HEADER,
  StratusError,
} from "@stratus/runtime";
import type { AuthenticatedIdentity } from "@stratus/runtime/auth";
import {
  createHttpServer,
  decodeSegments,
  HttpFault,
  header,
  hostBaseUrl,
  PathRouter,
  parseJsonBody,
  type RestResponse,
  type RestServer,
  readBody,
  requestUrl,
  sendResponse,
} from "@stratus/runtime/http";
import { faultOf } from "./errors.js";
import { versionDocument, versionsDocument } from "./routes/versions.js";

export type { RestResponse };

export interface KeystoneRequest {
  method: string;
  params: Record<string, string>;
  query: URLSearchParams;
  headers: IncomingHttpHeaders;
  /** Parsed JSON body, undefined when there was none. */
  body: unknown;
  /** http://host:port: the base of every link. */
  baseUrl: string;
  requestId: string;
}

export type Handler = (
  req: KeystoneRequest,
  caller: AuthenticatedIdentity,
) => Promise<RestResponse> | RestResponse;
export type OpenHandler = (req: KeystoneRequest) => Promise<RestResponse> | RestResponse;

type Route = { open: true; handler: OpenHandler } | { open: false; handler: Handler };

/** Routes under /v3: `route` needs a valid X-Auth-Token, `open` does not. */
export class KeystoneRouter {
  readonly paths = new PathRouter<Route>();

  route(method: string, path: string, handler: Handler): this {
    this.paths.add(method, path, { open: false, handler });
    return this;
  }

  open(method: string, path: string, handler: OpenHandler): this {
    this.paths.add(method, path, { open: true, handler });
    return this;
  }
}

export interface KeystoneServerOptions {
  router: KeystoneRouter;
  logger: Logger;
  bodyLimit: number;
  /** Base for links and WWW-Authenticate when set; otherwise taken from the Host header. */
  publicUrl?: string | undefined;
  /** The identity a token carries; throws "unauthorized" (or "unavailable"). */
  validate(token: string): Promise<AuthenticatedIdentity>;
  /** Serve HTTPS with the service's certificate (booted.tls); absent: HTTP. */
  tls?: ListenerTls | undefined;
}

const TOKEN_HEADER = "x-auth-token";

export function createKeystoneServer(options: KeystoneServerOptions): RestServer {
  const { router, logger } = options;

  const route = async (req: IncomingMessage, requestId: string, baseUrl: string): Promise<RestResponse> => {
    const method = (req.method ?? "GET").toUpperCase();
    const url = requestUrl(req);
    const segments = decodeSegments(url.pathname);
    // The body is read before anything is answered so that keep-alive connections stay usable.
    const raw = await readBody(req, options.bodyLimit);
    const readOnly = method === "GET" || method === "HEAD";
    if (segments.length === 0) {
      if (!readOnly) throw methodNotAllowed();
      return { status: 300, body: versionsDocument(baseUrl), headers: { location: `${baseUrl}/v3/` } };
    }
    if (segments[0] !== "v3") throw new StratusError("not_found", "The resource could not be found.");
    if (segments.length === 1) {
      if (!readOnly) throw methodNotAllowed();
      return { status: 200, body: versionDocument(baseUrl) };
    }
    const path = segments.slice(1);
    let match = router.paths.match(method, path);
    if (match.kind !== "found" && method === "HEAD") match = router.paths.match("GET", path);
    if (match.kind === "not_found") throw new StratusError("not_found", "The resource could not be found.");
    if (match.kind === "method_not_allowed") throw methodNotAllowed();
    const request: KeystoneRequest = {
      method,
      params: match.params,
      query: url.searchParams,
      headers: req.headers,
      body: readOnly || method === "DELETE" ? undefined : parseJsonBody(raw, header(req, "content-type")),
      baseUrl,
      requestId,
    };
    const target = match.handler;
    if (target.open) return target.handler(request);
    const token = header(req, TOKEN_HEADER);
    if (!token) throw new StratusError("unauthorized", "no X-Auth-Token");
    const caller = await options.validate(token);
    return target.handler(request, caller);
  };

  return createHttpServer(
    logger,
    options.tls,
    async (req, res) => {
      const started = performance.now();
      const requestId = acceptRequestId(header(req, REQUEST_ID_HEADER));
      res.setHeader(REQUEST_ID_HEADER, requestId);
      const baseUrl = options.publicUrl?.replace(/\/+$/, "") ?? hostBaseUrl(req);
      let result: RestResponse;
      try {
        result = await route(req, requestId, baseUrl);
      } catch (err) {
        const fault = faultOf(err, logger, requestId);
        result = { status: fault.status, body: fault.body, headers: fault.headers };
        if (fault.status === 401) result.headers = { "www-authenticate": `Keystone uri="${baseUrl}"` };
      }
      if (req.method === "HEAD" && result.body !== undefined) {
        const { body: _, ...rest } = result;
        result = rest;
      }
      sendResponse(res, result);
      logger.info(
        {
          request_id: requestId,
          method: req.method,
          path: req.url?.split("?")[0]?.slice(0, 200),
          status: result.status,
          ms: Math.round((performance.now() - started) * 10) / 10,
        },
        "rest",
      );
    },
    "identity",
  );
}

function methodNotAllowed(): HttpFault {
  return new HttpFault(405, "The method specified is not allowed for this resource.");
}
