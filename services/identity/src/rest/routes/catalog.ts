// /v3/regions, /v3/services, /v3/endpoints: the service catalog, written by an admin (npm start
// registers every Stratus endpoint through here).
import { z } from "zod";
import { enforce } from "../../auth/policy.js";
import { description, extras, parseBody, queryText, text } from "../input.js";
import type { KeystoneRouter } from "../keystone-server.js";
import { collection, endpointView, regionView, serviceView } from "../views.js";
import type { RouteDeps } from "./deps.js";

const url = text(1024).refine((u) => URL.canParse(u), "must be a URL");
const iface = z.enum(["public", "internal", "admin"]);

const regionCreate = z.object({
  id: text(255).min(1).optional(),
  description: description.nullish(),
  parent_region_id: text(255).nullish(),
});
const regionUpdate = regionCreate.omit({ id: true });
const serviceCreate = z.looseObject({
  type: text(255).min(1),
  name: text(255).nullish(),
  description: description.nullish(),
  enabled: z.boolean().optional(),
});
const serviceUpdate = serviceCreate.partial();
const endpointCreate = z.object({
  service_id: text(64).min(1),
  interface: iface,
  url,
  region_id: text(255).nullish(),
  region: text(255).nullish(),
  enabled: z.boolean().optional(),
});
const endpointUpdate = endpointCreate.partial();
const SERVICE_FIELDS = ["id", "type", "name", "description", "enabled"] as const;

export function catalogRoutes(router: KeystoneRouter, deps: RouteDeps): void {
  const { catalog } = deps.dir;
  const db = deps.dir.db;

  router.route("GET", "regions", async (req, caller) => {
    enforce("identity:list_regions", caller);
    const regions = await catalog.listRegions({ parentRegionId: queryText(req.query, "parent_region_id") });
    return {
      status: 200,
      body: collection(
        req.baseUrl,
        "regions",
        "regions",
        regions.map((r) => regionView(req.baseUrl, r)),
      ),
    };
  });
  router.route("POST", "regions", async (req, caller) => {
    const r = parseBody(regionCreate, req.body, "region");
    enforce("identity:create_region", caller);
    const region = await catalog.createRegion(db, {
      id: r.id,
      description: r.description ?? "",
      parentRegionId: r.parent_region_id ?? undefined,
    });
    return { status: 201, body: { region: regionView(req.baseUrl, region) } };
  });
  router.route("GET", "regions/:id", async (req, caller) => {
    enforce("identity:get_region", caller);
    return {
      status: 200,
      body: { region: regionView(req.baseUrl, await catalog.getRegion(req.params.id!)) },
    };
  });
  router.route("PATCH", "regions/:id", async (req, caller) => {
    const r = parseBody(regionUpdate, req.body, "region");
    enforce("identity:update_region", caller);
    const region = await catalog.updateRegion(db, req.params.id!, {
      description: r.description ?? undefined,
      parentRegionId: r.parent_region_id === undefined ? undefined : (r.parent_region_id ?? undefined),
    });
    return { status: 200, body: { region: regionView(req.baseUrl, region) } };
  });
  router.route("DELETE", "regions/:id", async (req, caller) => {
    enforce("identity:delete_region", caller);
    await catalog.deleteRegion(db, req.params.id!);
    return { status: 204 };
  });

  router.route("GET", "services", async (req, caller) => {
    enforce("identity:list_services", caller);
    const services = await catalog.listServices({
      type: queryText(req.query, "type"),
      name: queryText(req.query, "name"),
    });
    return {
      status: 200,
      body: collection(
        req.baseUrl,
        "services",
        "services",
        services.map((s) => serviceView(req.baseUrl, s)),
      ),
    };
  });
  router.route("POST", "services", async (req, caller) => {
    const s = parseBody(serviceCreate, req.body, "service");
    enforce("identity:create_service", caller);
    const service = await catalog.createService(db, {
      type: s.type,
      name: s.name ?? "",
      description: s.description ?? "",
      enabled: s.enabled ?? true,
      extra: extras(s, SERVICE_FIELDS),
    });
    return { status: 201, body: { service: serviceView(req.baseUrl, service) } };
  });
  router.route("GET", "services/:id", async (req, caller) => {
    enforce("identity:get_service", caller);
    return {
      status: 200,
      body: { service: serviceView(req.baseUrl, await catalog.getService(req.params.id!)) },
    };
  });
  router.route("PATCH", "services/:id", async (req, caller) => {
    const s = parseBody(serviceUpdate, req.body, "service");
    enforce("identity:update_service", caller);
    const service = await catalog.updateService(db, req.params.id!, {
      type: s.type,
      name: s.name ?? undefined,
      description: s.description ?? undefined,
      enabled: s.enabled,
      extra: extras(s, SERVICE_FIELDS),
    });
    return { status: 200, body: { service: serviceView(req.baseUrl, service) } };
  });
  router.route("DELETE", "services/:id", async (req, caller) => {
    enforce("identity:delete_service", caller);
    await catalog.deleteService(db, req.params.id!);
    return { status: 204 };
  });

  router.route("GET", "endpoints", async (req, caller) => {
    enforce("identity:list_endpoints", caller);
    const endpoints = await catalog.listEndpoints({
      serviceId: queryText(req.query, "service_id"),
      interface: queryText(req.query, "interface"),
      regionId: queryText(req.query, "region_id"),
    });
    return {
      status: 200,
      body: collection(
        req.baseUrl,
        "endpoints",
        "endpoints",
        endpoints.map((e) => endpointView(req.baseUrl, e)),
      ),
    };
  });
  router.route("POST", "endpoints", async (req, caller) => {
    const e = parseBody(endpointCreate, req.body, "endpoint");
    enforce("identity:create_endpoint", caller);
    const endpoint = await catalog.createEndpoint(db, {
      serviceId: e.service_id,
      interface: e.interface,
      url: e.url,
      regionId: e.region_id ?? e.region ?? undefined,
      enabled: e.enabled ?? true,
    });
    return { status: 201, body: { endpoint: endpointView(req.baseUrl, endpoint) } };
  });
  router.route("GET", "endpoints/:id", async (req, caller) => {
    enforce("identity:get_endpoint", caller);
    return {
      status: 200,
      body: { endpoint: endpointView(req.baseUrl, await catalog.getEndpoint(req.params.id!)) },
    };
  });
  router.route("PATCH", "endpoints/:id", async (req, caller) => {
    const e = parseBody(endpointUpdate, req.body, "endpoint");
    enforce("identity:update_endpoint", caller);
    const regionId = e.region_id !== undefined ? e.region_id : e.region;
    const endpoint = await catalog.updateEndpoint(db, req.params.id!, {
      serviceId: e.service_id,
      interface: e.interface,
      url: e.url,
      regionId: regionId === undefined ? undefined : (regionId ?? undefined),
      enabled: e.enabled,
    });
    return { status: 200, body: { endpoint: endpointView(req.baseUrl, endpoint) } };
  });
  router.route("DELETE", "endpoints/:id", async (req, caller) => {
    enforce("identity:delete_endpoint", caller);
    await catalog.deleteEndpoint(db, req.params.id!);
    return { status: 204 };
  });
}
