// The Networking API v2.0 listener of the api service (its own port, NETWORK_API_PORT): request
// id, the caller as the compute edge authenticates it, body limit and JSON checks of
// @stratus/runtime/http, routing and Neutron's error bodies. The version documents and the
// extension list are answered here; resources come from the route table.
import type http from "node:http";
import type { IncomingMessage } from "node:http";
import {
  acceptRequestId,
  type ListenerTls,
  type Logger,
  REQUEST_ID_HEADER,
  runWithContext,
} from "@stratus/runtime";
import {
  createHttpServer,
  decodeSegments,
  header,
  hostBaseUrl,
  parseJsonBody,
  type RestResponse,
  type RestServer,
  readBody,
  requestUrl,
  sendResponse,
} from "@stratus/runtime/http";
// The one way this edge learns its caller: the same functions the compute edge uses.
import { authenticate, meshContext } from "../http/server.js";
import { EXTENSIONS, extensionByAlias, extensionView } from "./extensions.js";
import { NeutronFault, neutronFault } from "./faults.js";
import type { NetRequest, NetRouter } from "./router.js";

export interface NetworkingServerOptions {
  router: NetRouter;
  logger: Logger;
  /** Largest accepted request body in bytes. */
  bodyLimit: number;
  /** Base for links when set (e.g. behind a proxy); otherwise taken from the Host header. */
  publicUrl?: string | undefined;
  tls?: ListenerTls | undefined;
}

/** The collections GET /v2.0 lists (Neutron's resources document). */
const CORE_RESOURCES = [
  ["network", "networks"],
  ["subnet", "subnets"],
  ["subnetpool", "subnetpools"],
  ["port", "ports"],
] as const;

const methodNotAllowed = () =>
  new NeutronFault(
    405,
    "HTTPMethodNotAllowed",
    "The server could not comply with the request since it is either malformed or otherwise incorrect.",
  );
const pathNotFound = () => new NeutronFault(404, "HTTPNotFound", "The resource could not be found.");

export function createNetworkingServer(options: NetworkingServerOptions): RestServer {
  const { router, logger, bodyLimit } = options;

  const handle = async (req: IncomingMessage, res: http.ServerResponse) => {
    const started = performance.now();
    const requestId = acceptRequestId(header(req, REQUEST_ID_HEADER));
    res.setHeader("x-openstack-request-id", requestId);
    let result: RestResponse;
    try {
      result = await route(req, requestId);
    } catch (err) {
      result = neutronFault(err, logger, requestId);
    }
    sendResponse(res, result);
    logger.info(
      {
        request_id: requestId,
        method: req.method,
        url: req.url?.slice(0, 200),
        status: result.status,
        ms: Math.round((performance.now() - started) * 10) / 10,
      },
      "networking rest",
    );
  };

  const route = async (req: IncomingMessage, requestId: string): Promise<RestResponse> => {
    const method = (req.method ?? "GET").toUpperCase();
    const hostUrl = options.publicUrl?.replace(/\/+$/, "") ?? hostBaseUrl(req);
    const url = requestUrl(req);
    const all = decodeSegments(url.pathname);
    // The body is read before anything is answered so that keep-alive connections stay usable.
    const raw = await readBody(req, bodyLimit);
    const readOnly = method === "GET" || method === "HEAD";

    if (all.length === 0) {
      if (!readOnly) throw methodNotAllowed();
      return { status: 200, body: versionsDocument(hostUrl) };
    }
    if (all[0] !== "v2.0") throw pathNotFound();
    // Neutron accepts a ".json" suffix on the last segment (the format the answer is in).
    const segments = all.slice(1);
    const last = segments.length - 1;
    if (last >= 0 && segments[last]!.endsWith(".json")) segments[last] = segments[last]!.slice(0, -5);

    const caller = await authenticate(req.headers["x-auth-token"], requestId);
    const baseUrl = `${hostUrl}/v2.0`;

    if (segments.length === 0) {
      if (!readOnly) throw methodNotAllowed();
      return { status: 200, body: resourcesDocument(baseUrl) };
    }
    if (segments[0] === "extensions") {
      if (!readOnly) throw methodNotAllowed();
      if (segments.length === 1) return { status: 200, body: { extensions: EXTENSIONS.map(extensionView) } };
      const ext = segments.length === 2 ? extensionByAlias(segments[1]!) : undefined;
      if (!ext)
        throw new NeutronFault(404, "HTTPNotFound", `Extension with alias ${segments[1]} does not exist`);
      return { status: 200, body: { extension: extensionView(ext) } };
    }

    const match = router.match(method === "HEAD" ? "GET" : method, segments);
    if (match.kind === "not_found") throw pathNotFound();
    if (match.kind === "method_not_allowed") throw methodNotAllowed();
    const body =
      method === "GET" || method === "HEAD" || method === "DELETE"
        ? undefined
        : parseJsonBody(raw, header(req, "content-type"));
    const request: NetRequest = {
      method,
      segments,
      params: match.params,
      query: url.searchParams,
      headers: req.headers,
      body,
      caller,
      baseUrl,
    };
    return runWithContext(meshContext(caller), () => match.handler(request));
  };

  return createHttpServer(logger, options.tls, handle);
}

/** GET /: the one version, v2.0. */
function versionsDocument(hostUrl: string) {
  return {
    versions: [{ id: "v2.0", status: "CURRENT", links: [{ href: `${hostUrl}/v2.0/`, rel: "self" }] }],
  };
}

/** GET /v2.0: the core collections. */
function resourcesDocument(baseUrl: string) {
  return {
    resources: CORE_RESOURCES.map(([name, collection]) => ({
      name,
      collection,
      links: [{ href: `${baseUrl}/${collection}`, rel: "self" }],
    })),
  };
}
