// Routers of the Networking API v2.0 (the router and ext-gw-mode extensions): CRUD with
// external_gateway_info (network_id, enable_snat, external_fixed_ips), and
// PUT /routers/{id}/add_router_interface and remove_router_interface by subnet_id or port_id.
// The network-adapter makes the gateway and interface ports and chooses their addresses; it keeps
// external_fixed_ips and enable_snat to admins (Neutron's policy).
import type { MessageInitShape, MessageShape } from "@bufbuild/protobuf";
import type {
  FixedIpSchema,
  RouterInterfaceInfo,
  RouterSchema,
  UpdateRouterRequestSchema,
} from "@stratus/contracts/network/v1";
import { invalidInput } from "@stratus/runtime";
import type { NetworkDeps } from "./deps.js";
import { badRequest } from "./faults.js";
import { projectOf } from "./project.js";
import { type Attrs, checkAttrs, neutronTime, onlyKeys, registerResource, textOf } from "./resource.js";
import type { NetRequest, NetRouter, RestResponse } from "./router.js";

type Router = MessageShape<typeof RouterSchema>;
type FixedIpInit = MessageInitShape<typeof FixedIpSchema>;

const ROUTER_ATTRS: Attrs = {
  name: { type: "string", post: true, put: true },
  description: { type: "string", post: true, put: true },
  admin_state_up: { type: "bool", post: true, put: true },
  external_gateway_info: { type: "object_or_null", post: true, put: true },
  project_id: { type: "string", post: true },
  tenant_id: { type: "string", post: true },
  id: { type: "uuid" },
  status: { type: "string" },
  created_at: { type: "string" },
  updated_at: { type: "string" },
  revision_number: { type: "int" },
};

/** What external_gateway_info may hold (neutron-lib's l3 definition with ext-gw-mode). */
const GATEWAY_ATTRS: Attrs = {
  network_id: { type: "uuid", post: true, required: true },
  enable_snat: { type: "bool", post: true },
  external_fixed_ips: { type: "object_list", post: true },
};

export function routerView(_req: NetRequest, r: Router): Record<string, unknown> {
  return {
    id: r.id,
    name: r.name,
    description: r.description,
    tenant_id: r.projectId,
    project_id: r.projectId,
    admin_state_up: r.adminStateUp,
    status: r.status || "ACTIVE",
    external_gateway_info: r.externalNetworkId
      ? {
          network_id: r.externalNetworkId,
          enable_snat: r.enableSnat,
          external_fixed_ips: r.externalFixedIps.map((f) => ({
            subnet_id: f.subnetId,
            ip_address: f.ipAddress,
          })),
        }
      : null,
    created_at: neutronTime(r.createdAt),
    updated_at: neutronTime(r.updatedAt),
    revision_number: Number(r.revisionNumber),
  };
}

interface Gateway {
  networkId: string;
  enableSnat?: boolean;
  externalFixedIps: FixedIpInit[];
}

/** external_gateway_info of a body: null or {} clears the gateway (undefined), else its parts. */
function gateway(v: unknown): Gateway | undefined {
  if (v === null || Object.keys(v as object).length === 0) return undefined;
  const g = checkAttrs(v as Record<string, unknown>, GATEWAY_ATTRS, "post");
  const fixed = ((g.external_fixed_ips as Record<string, unknown>[] | undefined) ?? []).map((e) => {
    onlyKeys("external_fixed_ips", e, ["subnet_id", "ip_address"]);
    return {
      subnetId: textOf("external_fixed_ips", e, "subnet_id", { optional: true }),
      ipAddress: textOf("external_fixed_ips", e, "ip_address", { optional: true }),
    };
  });
  return {
    networkId: g.network_id as string,
    ...(g.enable_snat === undefined ? {} : { enableSnat: g.enable_snat as boolean }),
    externalFixedIps: fixed,
  };
}

/** Neutron's answer to add/remove_router_interface. */
function interfaceView(i: RouterInterfaceInfo | undefined) {
  return {
    id: i?.routerId,
    tenant_id: i?.projectId,
    project_id: i?.projectId,
    port_id: i?.portId,
    subnet_id: i?.subnetId,
    subnet_ids: i?.subnetIds ?? [],
    network_id: i?.networkId,
  };
}

/** The body of add/remove_router_interface: subnet_id or port_id (a plain object, no envelope). */
function interfaceBody(req: NetRequest, adding: boolean): { subnetId: string; portId: string } {
  const body = req.body;
  if (body === undefined || body === null || typeof body !== "object" || Array.isArray(body)) {
    throw badRequest("Body contains invalid data");
  }
  const b = body as Record<string, unknown>;
  const id = (name: string) => {
    const v = b[name];
    if (v === undefined) return "";
    if (typeof v !== "string" || !/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(v)) {
      throw badRequest(
        `Invalid input for ${name}. Reason: '${typeof v === "string" ? v : JSON.stringify(v)}' is not a valid UUID.`,
      );
    }
    return v.toLowerCase();
  };
  const subnetId = id("subnet_id");
  const portId = id("port_id");
  if (!subnetId && !portId) {
    throw invalidInput("Bad router request: Either subnet_id or port_id must be specified.");
  }
  if (adding && subnetId && portId) {
    throw invalidInput("Bad router request: Cannot specify both subnet-id and port-id.");
  }
  return { subnetId, portId };
}

export function routerRoutes(router: NetRouter, deps: NetworkDeps): void {
  registerResource<Router>(router, {
    singular: "router",
    collection: "routers",
    attrs: ROUTER_ATTRS,
    list: async (_req, query) => {
      const { routers, hasMore } = await deps.network.listRouters({ query });
      return { items: routers, hasMore };
    },
    get: async (_req, id) => (await deps.network.getRouter({ id })).router!,
    create: async (_req, a) => {
      const gw = a.external_gateway_info === undefined ? undefined : gateway(a.external_gateway_info);
      const { router: made } = await deps.network.createRouter({
        name: (a.name as string | undefined) ?? "",
        description: (a.description as string | undefined) ?? "",
        projectId: projectOf(a),
        ...(a.admin_state_up === undefined ? {} : { adminStateUp: a.admin_state_up as boolean }),
        externalNetworkId: gw?.networkId ?? "",
        externalFixedIps: gw?.externalFixedIps ?? [],
        ...(gw?.enableSnat === undefined ? {} : { enableSnat: gw.enableSnat }),
      });
      return made!;
    },
    update: async (_req, id, a) => {
      const update: MessageInitShape<typeof UpdateRouterRequestSchema> = {
        id,
        ...(a.name === undefined ? {} : { name: a.name as string }),
        ...(a.description === undefined ? {} : { description: a.description as string }),
        ...(a.admin_state_up === undefined ? {} : { adminStateUp: a.admin_state_up as boolean }),
      };
      if (a.external_gateway_info !== undefined) {
        const gw = gateway(a.external_gateway_info);
        update.updateExternalGateway = true;
        update.externalNetworkId = gw?.networkId ?? "";
        update.externalFixedIps = gw?.externalFixedIps ?? [];
        if (gw?.enableSnat !== undefined) update.enableSnat = gw.enableSnat;
      }
      return (await deps.network.updateRouter(update)).router!;
    },
    remove: async (_req, id) => {
      await deps.network.deleteRouter({ id });
    },
    view: routerView,
    id: (r) => r.id,
  });

  const action =
    (adding: boolean) =>
    async (req: NetRequest): Promise<RestResponse> => {
      const which = interfaceBody(req, adding);
      const routerId = req.params.id!;
      const answer = adding
        ? await deps.network.addRouterInterface({ routerId, ...which })
        : await deps.network.removeRouterInterface({ routerId, ...which });
      return { status: 200, body: interfaceView(answer.interface) };
    };
  router.add("PUT", "/routers/:id/add_router_interface", action(true));
  router.add("PUT", "/routers/:id/remove_router_interface", action(false));
}
