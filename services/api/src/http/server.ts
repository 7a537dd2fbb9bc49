// The REST server: request id, auth, microversion, body limit, routing and Nova fault bodies.
import type http from "node:http";
import type { IncomingMessage } from "node:http";
import {
  acceptRequestId,
  defaultRoles,
  type ListenerTls,
  type Logger,
  novaFault,
  REQUEST_ID_HEADER,
  type RequestContext,
  runWithContext,
  StratusError,
  userContext,
} from "@stratus/runtime";
import {
  createHttpServer,
  decodeSegments,
  HttpFault,
  header,
  hostBaseUrl,
  parseJsonBody,
  type RestResponse,
  type RestServer,
  readBody,
  requestUrl,
  restFault,
  sendResponse,
} from "@stratus/runtime/http";
import { choicesDocument, versionDocument, versionsDocument } from "../handlers/versions.js";
import {
  type ApiVersion,
  formatVersion,
  LEGACY_VERSION_HEADER,
  MIN_VERSION,
  negotiateVersion,
  VERSION_HEADER,
} from "../microversion.js";
import type { Caller, RestRequest, Router } from "./router.js";

export interface RestServerOptions {
  router: Router;
  logger: Logger;
  /** Largest accepted request body in bytes (Nova's max_request_body_size). */
  bodyLimit: number;
  /** Base for links when set (e.g. behind a proxy); otherwise taken from the Host header. */
  publicUrl?: string | undefined;
  /** Serve HTTPS with the service's certificate (booted.tls); absent: HTTP. */
  tls?: ListenerTls | undefined;
}

const TOKEN_PART = /^[A-Za-z0-9_.@-]{1,255}$/;

/** design.md §6: X-Auth-Token `<user>:<project>`; user `admin` is admin. */
export function authenticate(token: string | string[] | undefined, requestId: string): Caller {
  const value = Array.isArray(token) ? token[0] : token;
  if (!value) throw new StratusError("unauthorized", "Authentication required");
  const i = value.indexOf(":");
  const userId = i > 0 ? value.slice(0, i) : "";
  const projectId = i > 0 ? value.slice(i + 1) : "";
  if (!TOKEN_PART.test(userId) || !TOKEN_PART.test(projectId)) {
    throw new StratusError("unauthorized", "The request you have made requires authentication.");
  }
  return { requestId, userId, projectId, isAdmin: userId === "admin" };
}

/**
 * The context the handlers' mesh calls act in: the api's service token with the caller as the
 * user it acts for (its admin flag as the roles it implies).
 */
export function meshContext(caller: Caller): RequestContext {
  return userContext({
    requestId: caller.requestId,
    userId: caller.userId,
    projectId: caller.projectId,
    roles: defaultRoles(caller.isAdmin),
  });
}

/** Nova's fault body for a failed request (5xx bodies say nothing of what failed inside). */
function faultOf(err: unknown, logger: Logger, requestId: string): RestResponse {
  const fault = restFault(err, {
    logger,
    requestId,
    service: "compute",
    unexpected: "Unexpected API Error. Please report this with the request id.",
  });
  return { status: fault.status, body: novaFault(fault.status, fault.message), headers: fault.headers };
}

export function createRestServer(options: RestServerOptions): RestServer {
  const { router, logger, bodyLimit } = options;
  const collections = router.collections();

  const handle = async (req: IncomingMessage, res: http.ServerResponse) => {
    const started = performance.now();
    const requestId = acceptRequestId(header(req, REQUEST_ID_HEADER));
    res.setHeader("x-openstack-request-id", requestId);
    res.setHeader("x-compute-request-id", requestId);
    let version: ApiVersion | undefined;
    let result: RestResponse;
    try {
      result = await route(req, requestId, (v) => {
        version = v;
        const s = formatVersion(v);
        res.setHeader("openstack-api-version", `compute ${s}`);
        res.setHeader("x-openstack-nova-api-version", s);
      });
    } catch (err) {
      result = faultOf(err, logger, requestId);
    }
    if (version) res.setHeader("vary", "OpenStack-API-Version, X-OpenStack-Nova-API-Version");
    sendResponse(res, result);
    logger.info(
      {
        request_id: requestId,
        method: req.method,
        url: req.url?.slice(0, 200),
        status: result.status,
        version: version ? formatVersion(version) : undefined,
        ms: Math.round((performance.now() - started) * 10) / 10,
      },
      "rest",
    );
  };

  const route = async (
    req: IncomingMessage,
    requestId: string,
    setVersion: (v: ApiVersion) => void,
  ): Promise<RestResponse> => {
    const method = (req.method ?? "GET").toUpperCase();
    const hostUrl = options.publicUrl?.replace(/\/+$/, "") ?? hostBaseUrl(req);
    const url = requestUrl(req);
    const all = decodeSegments(url.pathname);
    // The body is read before anything is answered so that keep-alive connections stay usable.
    const raw = await readBody(req, bodyLimit);

    if (all.length === 0) {
      if (method !== "GET" && method !== "HEAD") throw methodNotAllowed();
      return { status: 200, body: versionsDocument(hostUrl) };
    }
    const prefix = all[0];
    if (prefix !== "v2.1" && prefix !== "v2") {
      return { status: 300, body: choicesDocument(hostUrl, url.pathname) };
    }
    // v2 is the v2.0-compatible endpoint: served as 2.1, microversion headers ignored.
    const legacy = prefix === "v2";
    let segments = all.slice(1);
    if (segments.length === 0) {
      if (method !== "GET" && method !== "HEAD") throw methodNotAllowed();
      if (!legacy) setVersion(negotiate(req));
      return { status: 200, body: versionDocument(hostUrl, legacy ? "v2.0" : "v2.1") };
    }

    const caller = authenticate(req.headers["x-auth-token"], requestId);
    const version = legacy ? MIN_VERSION : negotiate(req);
    if (!legacy) setVersion(version);

    // The project id in the URL is optional (2.18); it must be the caller's own.
    let baseUrl = `${hostUrl}/${prefix}`;
    if (segments.length >= 2 && !collections.has(segments[0]!)) {
      const urlProject = segments[0]!;
      if (urlProject !== caller.projectId && !caller.isAdmin) {
        throw new StratusError(
          "invalid_input",
          `Malformed request URL: URL's project_id '${urlProject}' doesn't match Context's project_id '${caller.projectId}'`,
        );
      }
      segments = segments.slice(1);
      baseUrl = `${baseUrl}/${encodeURIComponent(urlProject)}`;
    }

    const match = router.match(method, segments, version);
    if (match.kind === "not_found") {
      throw new StratusError("not_found", "The resource could not be found.");
    }
    if (match.kind === "method_not_allowed") throw methodNotAllowed();
    const body =
      method === "GET" || method === "DELETE" ? undefined : parseJsonBody(raw, header(req, "content-type"));
    const request: RestRequest = {
      method,
      segments,
      params: match.params,
      query: url.searchParams,
      headers: req.headers,
      version,
      body,
      caller,
      baseUrl,
      hostUrl,
    };
    return runWithContext(meshContext(caller), () => match.handler(request));
  };

  return createHttpServer(logger, options.tls, handle, "compute");
}

function negotiate(req: IncomingMessage): ApiVersion {
  return negotiateVersion({
    standard: req.headers[VERSION_HEADER],
    legacy: req.headers[LEGACY_VERSION_HEADER],
  });
}

function methodNotAllowed(): HttpFault {
  return new HttpFault(405, "The method specified is not allowed for this resource.");
}
