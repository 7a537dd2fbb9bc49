// Ports of the Networking API v2.0 (with the binding and ip_allocation extensions): Neutron's port
// view and the translation of its bodies to the network-adapter's CreatePort/UpdatePort/DeletePort.
// The adapter decides everything else: ip_allocation (deferred on a routed network when no
// fixed_ips are named, none with fixed_ips: []), the addresses, the binding's segment when
// binding:host_id is set, who may set what. A port a server uses is not deleted here: the
// adapter refuses it (409) until the server lets it go (Neutron would delete it and tell Nova).
import { isIP } from "node:net";
import type { MessageInitShape, MessageShape } from "@bufbuild/protobuf";
import {
  type CreatePortRequestSchema,
  type FixedIpSchema,
  IpAllocation,
  type PortSchema,
  type UpdatePortRequestSchema,
} from "@stratus/contracts/network/v1";
import { StratusError } from "@stratus/runtime";
import type { NetworkDeps } from "./deps.js";
import { badRequest } from "./faults.js";
import { projectOf } from "./project.js";
import { type Attrs, neutronTime, onlyKeys, registerResource, textOf } from "./resource.js";
import type { Caller, NetRequest, NetRouter } from "./router.js";

type Port = MessageShape<typeof PortSchema>;
type FixedIpInit = MessageInitShape<typeof FixedIpSchema>;

const IP_ALLOCATION: Record<IpAllocation, string | null> = {
  [IpAllocation.UNSPECIFIED]: null,
  [IpAllocation.IMMEDIATE]: "immediate",
  [IpAllocation.DEFERRED]: "deferred",
  [IpAllocation.NONE]: "none",
};

/** Neutron's VNIC types (portbindings.VNIC_TYPES). */
export const VNIC_TYPES = [
  "normal",
  "direct",
  "macvtap",
  "baremetal",
  "direct-physical",
  "virtio-forwarder",
  "smart-nic",
  "vdpa",
  "remote-managed",
  "accelerator-direct",
  "accelerator-direct-physical",
];

/**
 * What a port body may carry (neutron-lib's port definition with binding and the standard
 * attributes). ip_allocation, status and the binding's vif_type/vif_details are the owner's,
 * never given: they are refused by name. binding:vnic_type is fixed at creation here.
 */
const PORT_ATTRS: Attrs = {
  network_id: { type: "uuid", post: true, required: true },
  name: { type: "string", post: true, put: true },
  description: { type: "string", post: true, put: true },
  admin_state_up: { type: "bool", post: true, put: true },
  mac_address: { type: "string", post: true, put: true },
  fixed_ips: { type: "object_list", post: true, put: true },
  device_id: { type: "string", post: true, put: true },
  device_owner: { type: "string", post: true, put: true },
  project_id: { type: "string", post: true },
  tenant_id: { type: "string", post: true },
  "binding:host_id": { type: "string", post: true, put: true },
  "binding:profile": { type: "object_or_null", post: true, put: true },
  "binding:vnic_type": { type: "string", post: true },
  id: { type: "uuid" },
  status: { type: "string" },
  ip_allocation: { type: "string" },
  "binding:vif_type": { type: "string" },
  "binding:vif_details": { type: "object_or_null" },
  created_at: { type: "string" },
  updated_at: { type: "string" },
  revision_number: { type: "int" },
};

/** binding:vif_details as Neutron types them: flags are booleans. */
function vifDetails(details: Record<string, string>): Record<string, unknown> {
  return Object.fromEntries(
    Object.entries(details).map(([k, v]) => [k, v === "true" ? true : v === "false" ? false : v]),
  );
}

/**
 * Neutron's port. The binding attributes other than vnic_type are admin-only in Neutron's
 * default policy (get_port:binding:host_id, :vif_type, :vif_details, :profile): absent for others.
 */
export function portView(req: NetRequest, p: Port): Record<string, unknown> {
  const view: Record<string, unknown> = {
    id: p.id,
    name: p.name,
    network_id: p.networkId,
    tenant_id: p.projectId,
    project_id: p.projectId,
    mac_address: p.macAddress,
    admin_state_up: p.adminStateUp,
    status: p.status || "DOWN",
    device_id: p.deviceId,
    device_owner: p.deviceOwner,
    fixed_ips: p.fixedIps.map((f) => ({ subnet_id: f.subnetId, ip_address: f.ipAddress })),
    description: p.description,
    ip_allocation: IP_ALLOCATION[p.ipAllocation],
    "binding:vnic_type": p.bindingVnicType || "normal",
    created_at: neutronTime(p.createdAt),
    updated_at: neutronTime(p.updatedAt),
    revision_number: Number(p.revisionNumber),
  };
  if (req.caller.isAdmin) {
    view["binding:host_id"] = p.bindingHostId;
    view["binding:profile"] = { ...p.bindingProfile };
    view["binding:vif_type"] = p.bindingVifType || "unbound";
    view["binding:vif_details"] = vifDetails(p.bindingVifDetails);
  }
  return view;
}

// ---- bodies -----------------------------------------------------------------------------------

/** Neutron's validate_fixed_ips: each entry {subnet_id?, ip_address?}, no address twice. */
function fixedIps(list: unknown[]): FixedIpInit[] {
  const seen = new Set<string>();
  return list.map((entry) => {
    const e = entry as Record<string, unknown>;
    onlyKeys("fixed_ips", e, ["subnet_id", "ip_address"]);
    const ipAddress = textOf("fixed_ips", e, "ip_address", { optional: true });
    const subnetId = textOf("fixed_ips", e, "subnet_id", { optional: true });
    if (!ipAddress && !subnetId) {
      throw badRequest(
        `Invalid input for fixed_ips. Reason: Invalid data format for fixed IP: '${JSON.stringify(e)}'.`,
      );
    }
    if (ipAddress) {
      if (!isIP(ipAddress)) {
        throw badRequest(`Invalid input for fixed_ips. Reason: '${ipAddress}' is not a valid IP address.`);
      }
      if (seen.has(ipAddress)) {
        throw badRequest(`Invalid input for fixed_ips. Reason: Duplicate IP address '${ipAddress}'.`);
      }
      seen.add(ipAddress);
    }
    if (subnetId && !/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(subnetId)) {
      throw badRequest(`Invalid input for fixed_ips. Reason: '${subnetId}' is not a valid UUID.`);
    }
    return { subnetId: subnetId.toLowerCase(), ipAddress };
  });
}

/** Neutron's validate_mac_address: six octets, not multicast; stored lower case with colons. */
function macAddress(v: string): string {
  if (!/^([0-9a-f]{2}[:-]){5}[0-9a-f]{2}$/i.test(v) || (Number.parseInt(v.slice(0, 2), 16) & 1) === 1) {
    throw badRequest(`Invalid input for mac_address. Reason: '${v}' is not a valid MAC address.`);
  }
  return v.replaceAll("-", ":").toLowerCase();
}

/** binding:profile as the owner keeps it: a flat map of strings. */
function bindingProfile(v: unknown): Record<string, string> {
  if (v === null) return {};
  const out: Record<string, string> = {};
  for (const [k, val] of Object.entries(v as Record<string, unknown>)) {
    if (val !== null && typeof val === "object") {
      throw badRequest(
        `Invalid input for binding:profile. Reason: the value of '${k}' is not a string, number or boolean.`,
      );
    }
    out[k] = val === null ? "" : String(val);
  }
  return out;
}

/** The attributes a non-admin may not write (Neutron's create_port:binding:host_id and the like). */
function policy(a: Record<string, unknown>, caller: Caller, action: "create_port" | "update_port"): void {
  if (caller.isAdmin) return;
  const adminOnly = [
    "binding:host_id",
    "binding:profile",
    ...(action === "update_port" ? ["mac_address"] : []),
  ];
  const denied = adminOnly.find((name) => name in a);
  if (denied) {
    throw new StratusError(
      "forbidden",
      `(rule:${action} and rule:${action}:${denied}) is disallowed by policy`,
    );
  }
}

/** POST /v2.0/ports → CreatePort. */
export function createPortRequest(
  a: Record<string, unknown>,
  caller: Caller,
): MessageInitShape<typeof CreatePortRequestSchema> {
  policy(a, caller, "create_port");
  const vnic = a["binding:vnic_type"] as string | undefined;
  if (vnic !== undefined && !VNIC_TYPES.includes(vnic)) {
    throw badRequest(
      `Invalid input for binding:vnic_type. Reason: '${vnic}' is not in [${VNIC_TYPES.map((v) => `'${v}'`).join(", ")}].`,
    );
  }
  const fixed = a.fixed_ips === undefined ? undefined : fixedIps(a.fixed_ips as unknown[]);
  return {
    networkId: a.network_id as string,
    projectId: projectOf(a),
    name: (a.name as string | undefined) ?? "",
    description: (a.description as string | undefined) ?? "",
    ...(a.admin_state_up === undefined ? {} : { adminStateUp: a.admin_state_up as boolean }),
    macAddress: a.mac_address === undefined ? "" : macAddress(a.mac_address as string),
    fixedIps: fixed ?? [],
    // fixed_ips: [] asks for a port without addresses (ip_allocation none).
    noFixedIps: fixed !== undefined && fixed.length === 0,
    deviceId: (a.device_id as string | undefined) ?? "",
    deviceOwner: (a.device_owner as string | undefined) ?? "",
    bindingHostId: (a["binding:host_id"] as string | undefined) ?? "",
    bindingProfile: a["binding:profile"] === undefined ? {} : bindingProfile(a["binding:profile"]),
    bindingVnicType: vnic ?? "",
  };
}

/** PUT /v2.0/ports/{id} → UpdatePort. */
export function updatePortRequest(
  id: string,
  a: Record<string, unknown>,
  caller: Caller,
): MessageInitShape<typeof UpdatePortRequestSchema> {
  policy(a, caller, "update_port");
  const fixed = a.fixed_ips === undefined ? undefined : fixedIps(a.fixed_ips as unknown[]);
  const profile = a["binding:profile"] === undefined ? undefined : bindingProfile(a["binding:profile"]);
  return {
    id,
    ...(a.name === undefined ? {} : { name: a.name as string }),
    ...(a.description === undefined ? {} : { description: a.description as string }),
    ...(a.admin_state_up === undefined ? {} : { adminStateUp: a.admin_state_up as boolean }),
    ...(a.device_id === undefined ? {} : { deviceId: a.device_id as string }),
    ...(a.device_owner === undefined ? {} : { deviceOwner: a.device_owner as string }),
    ...(a.mac_address === undefined ? {} : { macAddress: macAddress(a.mac_address as string) }),
    ...(a["binding:host_id"] === undefined ? {} : { bindingHostId: a["binding:host_id"] as string }),
    updateFixedIps: fixed !== undefined,
    fixedIps: fixed ?? [],
    updateBindingProfile: profile !== undefined,
    bindingProfile: profile ?? {},
  };
}

export function portRoutes(router: NetRouter, deps: NetworkDeps): void {
  registerResource<Port>(router, {
    singular: "port",
    collection: "ports",
    attrs: PORT_ATTRS,
    // device_id, network_id, fixed_ips=… and the rest are the owner's list filters.
    list: async (_req, query) => {
      const { ports, hasMore } = await deps.network.listPorts({ query });
      return { items: ports, hasMore };
    },
    get: async (_req, id) => (await deps.network.getPort({ id })).port!,
    create: async (req, body) => (await deps.network.createPort(createPortRequest(body, req.caller))).port!,
    update: async (req, id, body) =>
      (await deps.network.updatePort(updatePortRequest(id, body, req.caller))).port!,
    // The public API's delete: a port attached to a server is refused, not taken from under it.
    remove: async (_req, id) => {
      await deps.network.deletePort({ id, refuseIfAttached: true });
    },
    view: portView,
    id: (p) => p.id,
  });
}
