// Servers: create (create-server.ts), list, detail, show, delete, ips, os-instance-actions.
import type { MessageShape } from "@bufbuild/protobuf";
import { timestampFromDate, timestampMs } from "@bufbuild/protobuf/wkt";
import type { ComputeServiceSchema, InstanceActionSchema, ServerSchema } from "@stratus/contracts/compute/v1";
import { isStratusError, StratusError } from "@stratus/runtime";
import type { ApiDeps } from "../deps.js";
import type { RestRequest, RestResponse, Router } from "../http/router.js";
import { ALL_PROJECTS } from "../list-cache.js";
import { at, formatVersion } from "../microversion.js";
import { invalid, isoTime, links, nextLink, paging, queryParam } from "./common.js";
import { createServerRoute } from "./create-server.js";
import { addressesOf, serverDetail, viewContext } from "./server-view.js";

type Server = MessageShape<typeof ServerSchema>;
type ComputeService = MessageShape<typeof ComputeServiceSchema>;
type InstanceAction = MessageShape<typeof InstanceActionSchema>;

/** Every status Nova knows (filters naming another are invalid). */
const KNOWN_STATUSES = new Set([
  "ACTIVE",
  "BUILD",
  "DELETED",
  "ERROR",
  "HARD_REBOOT",
  "MIGRATING",
  "PASSWORD",
  "PAUSED",
  "REBOOT",
  "REBUILD",
  "RESCUE",
  "RESIZE",
  "REVERT_RESIZE",
  "SHELVED",
  "SHELVED_OFFLOADED",
  "SHUTOFF",
  "SOFT_DELETED",
  "SUSPENDED",
  "UNKNOWN",
  "VERIFY_RESIZE",
]);

const hostStatusWanted = (req: RestRequest) => req.caller.isAdmin && at(req.version, "serverHostStatus");

async function servicesFor(req: RestRequest, deps: ApiDeps): Promise<ComputeService[] | undefined> {
  if (!hostStatusWanted(req)) return undefined;
  return (await deps.conductor.listComputeServices({ binary: "" })).services;
}

function boolParam(value: string, name: string): boolean {
  const v = value.toLowerCase();
  if (v === "" || ["true", "t", "1", "yes", "y", "on"].includes(v)) return true;
  if (["false", "f", "0", "no", "n", "off"].includes(v)) return false;
  throw invalid(`Invalid value '${value}' for ${name}`);
}

async function listServers(req: RestRequest, deps: ApiDeps) {
  const q = req.query;
  const caller = req.caller;
  const { limit, marker } = paging(req);
  let allProjects = false;
  if (q.has("all_tenants")) {
    allProjects = boolParam(q.get("all_tenants")!, "all_tenants");
    if (allProjects && !caller.isAdmin) {
      throw new StratusError(
        "forbidden",
        "Policy doesn't allow os_compute_api:servers:index:get_all_tenants to be performed.",
      );
    }
  }
  let status = q.get("status")?.toUpperCase() ?? "";
  if (status && !KNOWN_STATUSES.has(status)) {
    if (at(req.version, "strictStatusFilter")) throw invalid(`Invalid status value`);
    return { servers: [] as Server[], limit };
  }
  if (status === "DELETED" && !caller.isAdmin) status = "";
  let changesSince: Date | undefined;
  const cs = q.get("changes-since");
  if (cs !== null) {
    const d = /^\d{4}-\d{2}-\d{2}(T[\d:.]+(Z|[+-]\d{2}:?\d{2})?)?$/.test(cs)
      ? new Date(cs)
      : new Date(Number.NaN);
    // Years 1 to 9999 only: what every layer below can carry.
    const year = d.getUTCFullYear();
    if (Number.isNaN(d.getTime()) || year < 1 || year > 9999) {
      throw invalid("Invalid filter field: changes-since.");
    }
    changesSince = d;
  }
  const projectFilter =
    caller.isAdmin && allProjects
      ? (queryParam(req, "project_id") ?? queryParam(req, "tenant_id") ?? "")
      : "";
  if (marker !== undefined && marker.length > 255)
    throw invalid(`marker [${marker.slice(0, 50)}…] not found`);
  const flavor = queryParam(req, "flavor")?.split("/").pop() ?? "";
  const image = queryParam(req, "image")?.split("/").pop() ?? "";
  const { servers } = await deps.conductor.listServers({
    projectId: caller.isAdmin ? projectFilter : caller.projectId,
    allProjects,
    name: queryParam(req, "name") ?? "",
    status,
    host: caller.isAdmin ? (queryParam(req, "host") ?? "") : "",
    flavorId: flavor,
    imageRef: image,
    ...(changesSince ? { changesSince: timestampFromDate(changesSince) } : {}),
    limit: limit === 0 ? 1 : limit,
    marker: marker ?? "",
    includeDeleted: caller.isAdmin && q.has("deleted") ? boolParam(q.get("deleted")!, "deleted") : false,
    reservationId: queryParam(req, "reservation_id") ?? "",
  });
  return { servers: limit === 0 ? [] : servers, limit };
}

/**
 * A server list answer from the list cache, or made by `make` and kept there. Not cached: what
 * shows host status (it follows heartbeats, not server writes). The key is everything the answer
 * depends on: who asks (project, admin), the version, the URL the links are built from, the query.
 */
async function cachedList(
  req: RestRequest,
  deps: ApiDeps,
  collection: string,
  make: () => Promise<unknown>,
): Promise<RestResponse> {
  const cache = deps.listCache;
  if (!cache?.enabled || hostStatusWanted(req)) return { status: 200, body: await make() };
  const caller = req.caller;
  const key = `${caller.isAdmin ? "admin" : "member"}|${caller.projectId}|${formatVersion(req.version)}|${req.baseUrl}|${req.hostUrl}|${collection}?${req.query}`;
  const hit = cache.get(key);
  if (hit) return { status: 200, json: hit };
  const json = await cache.fill(key, caller.isAdmin ? ALL_PROJECTS : caller.projectId, async () =>
    Buffer.from(JSON.stringify(await make())),
  );
  return { status: 200, json };
}

/**
 * A show that finds a server written within the cache's lifetime drops its project's cached
 * lists: the change's event may still be on its way, and a client comparing the two would
 * otherwise see the list lag behind the show.
 */
function dropListsIfNewer(deps: ApiDeps, server: Server): void {
  const cache = deps.listCache;
  if (!cache?.enabled || !server.updatedAt) return;
  if (Date.now() - timestampMs(server.updatedAt) < cache.ttlMs + 1000) cache.changed([server.projectId]);
}

function pageLinks(req: RestRequest, collection: string, servers: Server[], limit: number) {
  return servers.length > 0 && servers.length === limit
    ? { servers_links: nextLink(req, collection, servers[servers.length - 1]!.id, limit) }
    : {};
}

async function getServer(deps: ApiDeps, id: string): Promise<Server> {
  try {
    const { server } = await deps.conductor.getServer({ id });
    if (!server) throw new StratusError("not_found", "");
    return server;
  } catch (err) {
    if (isStratusError(err, "not_found") || isStratusError(err, "invalid_input")) {
      throw new StratusError("not_found", `Instance ${id} could not be found.`);
    }
    throw err;
  }
}

function actionView(req: RestRequest, a: InstanceAction, withEvents: boolean) {
  const view: Record<string, unknown> = {
    action: a.action,
    instance_uuid: a.instanceUuid,
    message: a.message || null,
    project_id: a.projectId,
    request_id: a.requestId,
    start_time: isoTime(a.startTime),
    user_id: a.userId,
  };
  if (withEvents) {
    const showEvents = req.caller.isAdmin || at(req.version, "actionEventsForOwners");
    if (showEvents) {
      view.events = a.events.map((e) => ({
        event: e.event,
        start_time: isoTime(e.startTime),
        finish_time: isoTime(e.finishTime),
        result: e.result || null,
        ...(req.caller.isAdmin ? { traceback: e.traceback || null } : {}),
      }));
    }
  }
  return view;
}

export function serverRoutes(router: Router, deps: ApiDeps): void {
  router.add("POST", "/servers", createServerRoute(deps));

  router.add("GET", "/servers", (req) =>
    cachedList(req, deps, "servers", async () => {
      const { servers, limit } = await listServers(req, deps);
      return {
        servers: servers.map((s) => ({ id: s.id, name: s.name, links: links(req, "servers", s.id) })),
        ...pageLinks(req, "servers", servers, limit),
      };
    }),
  );

  router.add("GET", "/servers/detail", (req) =>
    cachedList(req, deps, "servers/detail", async () => {
      const [{ servers, limit }, services] = await Promise.all([
        listServers(req, deps),
        servicesFor(req, deps),
      ]);
      const ctx = viewContext(req, services);
      return {
        servers: servers.map((s) => serverDetail(ctx, s)),
        ...pageLinks(req, "servers/detail", servers, limit),
      };
    }),
  );

  router.add("GET", "/servers/:id", async (req) => {
    const [server, services] = await Promise.all([getServer(deps, req.params.id!), servicesFor(req, deps)]);
    dropListsIfNewer(deps, server);
    return { status: 200, body: { server: serverDetail(viewContext(req, services), server) } };
  });

  router.add("DELETE", "/servers/:id", async (req) => {
    const id = req.params.id!;
    try {
      await deps.conductor.deleteServer({ id });
      deps.listCache?.changed([req.caller.projectId]);
    } catch (err) {
      if (isStratusError(err, "not_found") || isStratusError(err, "invalid_input")) {
        throw new StratusError("not_found", `Instance ${id} could not be found.`);
      }
      throw err;
    }
    return { status: 204 };
  });

  router.add("GET", "/servers/:id/ips", async (req) => {
    const server = await getServer(deps, req.params.id!);
    return { status: 200, body: { addresses: addressesOf(server) } };
  });

  router.add("GET", "/servers/:id/ips/:network", async (req) => {
    const server = await getServer(deps, req.params.id!);
    const label = req.params.network!;
    const found = addressesOf(server)[label];
    if (!found) throw new StratusError("not_found", "There are no such network in the instance");
    return { status: 200, body: { [label]: found } };
  });

  router.add("GET", "/servers/:id/os-instance-actions", async (req) => {
    const id = req.params.id!;
    try {
      const { actions } = await deps.conductor.listInstanceActions({ serverId: id });
      return { status: 200, body: { instanceActions: actions.map((a) => actionView(req, a, false)) } };
    } catch (err) {
      if (isStratusError(err, "not_found") || isStratusError(err, "invalid_input")) {
        throw new StratusError("not_found", `Instance ${id} could not be found.`);
      }
      throw err;
    }
  });

  router.add("GET", "/servers/:id/os-instance-actions/:requestId", async (req) => {
    const id = req.params.id!;
    const requestId = req.params.requestId!;
    try {
      const { action } = await deps.conductor.getInstanceAction({ serverId: id, requestId });
      if (!action) throw new StratusError("not_found", "");
      return { status: 200, body: { instanceAction: actionView(req, action, true) } };
    } catch (err) {
      if (isStratusError(err, "not_found") || isStratusError(err, "invalid_input")) {
        throw new StratusError("not_found", `Action for request_id ${requestId} on instance ${id} not found`);
      }
      throw err;
    }
  });
}
