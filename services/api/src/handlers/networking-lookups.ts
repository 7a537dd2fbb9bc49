// A read-only subset of the Networking (Neutron) API under the compute endpoint. With a single
// endpoint (`--os-endpoint …/v2.1`, as with admin_token auth), python-openstackclient resolves
// `--nic net-id=…` and `--nic port-id=…` at `{endpoint}/v2.0/networks/{id}` (then `?name=`) and
// `{endpoint}/v2.0/ports/{id}`; these routes answer those lookups from the network-adapter, with
// the caller's project scoping. Writes go through the network-adapter's own API, not here.
import type { MessageShape } from "@bufbuild/protobuf";
import type { NetworkSchema, PortSchema } from "@stratus/contracts/network/v1";
import { isStratusError, StratusError } from "@stratus/runtime";
import type { ApiDeps } from "../deps.js";
import type { RestRequest, Router } from "../http/router.js";
import { isoTime, queryParam, queryParams } from "./common.js";

type Network = MessageShape<typeof NetworkSchema>;
type Port = MessageShape<typeof PortSchema>;

function networkView(n: Network) {
  return {
    id: n.id,
    name: n.name,
    tenant_id: n.projectId,
    project_id: n.projectId,
    status: n.status || "ACTIVE",
    admin_state_up: n.adminStateUp,
    shared: n.shared,
    "router:external": n.routerExternal,
    is_default: n.isDefault,
    mtu: n.mtu,
    subnets: n.subnetIds,
    segments: n.segments.map((s) => ({
      "provider:network_type": s.networkType,
      "provider:physical_network": s.physicalNetwork || null,
      "provider:segmentation_id": s.segmentationId || null,
    })),
    created_at: isoTime(n.createdAt),
    updated_at: isoTime(n.updatedAt),
  };
}

function portView(p: Port) {
  return {
    id: p.id,
    name: p.name,
    network_id: p.networkId,
    tenant_id: p.projectId,
    project_id: p.projectId,
    mac_address: p.macAddress,
    fixed_ips: p.fixedIps.map((f) => ({ subnet_id: f.subnetId, ip_address: f.ipAddress })),
    device_id: p.deviceId,
    device_owner: p.deviceOwner,
    status: p.status,
    admin_state_up: p.adminStateUp,
    "binding:host_id": p.bindingHostId,
    "binding:vif_type": p.bindingVifType || "unbound",
    "binding:vnic_type": p.bindingVnicType || "normal",
    created_at: isoTime(p.createdAt),
    updated_at: isoTime(p.updatedAt),
  };
}

/** Not found and not visible are the same answer (no existence leak across projects). */
async function lookup<T>(what: string, id: string, get: () => Promise<T | undefined>): Promise<T> {
  try {
    const found = await get();
    if (found) return found;
  } catch (err) {
    if (!isStratusError(err, "not_found") && !isStratusError(err, "invalid_input")) throw err;
  }
  throw new StratusError("not_found", `${what} ${id} could not be found.`);
}

function scope(req: RestRequest): string {
  return req.caller.isAdmin ? "" : req.caller.projectId;
}

export function networkingLookupRoutes(router: Router, deps: ApiDeps): void {
  router.add("GET", "/v2.0/networks", async (req) => {
    const ids = queryParams(req, "id");
    const name = queryParam(req, "name") ?? "";
    const { networks } = await deps.network.listNetworks({ ids, name, projectId: scope(req) });
    // Shared networks are visible to every project, as in Neutron.
    const shared = scope(req) ? (await deps.network.listNetworks({ ids, name, shared: true })).networks : [];
    const seen = new Set<string>();
    const all = [...networks, ...shared].filter((n) => !seen.has(n.id) && seen.add(n.id));
    return { status: 200, body: { networks: all.map(networkView) } };
  });
  router.add("GET", "/v2.0/networks/:id", async (req) => {
    const id = req.params.id!;
    const n = await lookup("Network", id, async () => (await deps.network.getNetwork({ id })).network);
    return { status: 200, body: { network: networkView(n) } };
  });
  router.add("GET", "/v2.0/ports", async (req) => {
    const ids = queryParams(req, "id");
    const name = queryParam(req, "name") ?? null;
    const { ports } = await deps.network.listPorts({
      ids,
      projectId: scope(req),
      networkId: queryParam(req, "network_id") ?? "",
      deviceId: queryParam(req, "device_id") ?? "",
    });
    const filtered = name === null ? ports : ports.filter((p) => p.name === name);
    return { status: 200, body: { ports: filtered.map(portView) } };
  });
  router.add("GET", "/v2.0/ports/:id", async (req) => {
    const id = req.params.id!;
    const p = await lookup("Port", id, async () => (await deps.network.getPort({ id })).port);
    return { status: 200, body: { port: portView(p) } };
  });
}
