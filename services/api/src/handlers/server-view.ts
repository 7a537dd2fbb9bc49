// A server as the compute API shows it (GET /servers/{id}, /servers/detail): what each
// microversion and the caller's role add, worked out once per request (ViewContext).
import { createHash } from "node:crypto";
import type { MessageShape } from "@bufbuild/protobuf";
import type { ComputeServiceSchema, ServerSchema } from "@stratus/contracts/compute/v1";
import type { RestRequest } from "../http/router.js";
import { at } from "../microversion.js";
import { isoTime, links } from "./common.js";

type Server = MessageShape<typeof ServerSchema>;
type ComputeService = MessageShape<typeof ComputeServiceSchema>;

const PROGRESS_STATUSES = new Set(["ACTIVE", "BUILD", "REBUILD", "RESIZE", "VERIFY_RESIZE", "MIGRATING"]);

/** Nova's hostId: sha224(project + host), the same for every server of a project on a host. */
const hostIds = new Map<string, string>();
function hostId(s: Server): string {
  if (!s.host) return "";
  const key = `${s.projectId}\n${s.host}`;
  let id = hostIds.get(key);
  if (id === undefined) {
    id = createHash("sha224")
      .update(s.projectId + s.host)
      .digest("hex");
    if (hostIds.size >= 100_000) hostIds.clear();
    hostIds.set(key, id);
  }
  return id;
}

export function addressesOf(s: Server) {
  const out: Record<string, object[]> = {};
  if (s.vmState === "building") return out;
  const ordered = [...s.addresses].sort(
    (a, b) => (a.type === "floating" ? 1 : 0) - (b.type === "floating" ? 1 : 0),
  );
  for (const a of ordered) {
    const key = a.networkName || a.networkId;
    const list = out[key] ?? [];
    out[key] = list;
    list.push({
      version: a.version || (a.ipAddress.includes(":") ? 6 : 4),
      addr: a.ipAddress,
      "OS-EXT-IPS:type": a.type || "fixed",
      "OS-EXT-IPS-MAC:mac_addr": a.macAddress,
    });
  }
  return out;
}

/** What a server's view depends on besides the server, worked out once per request. */
export interface ViewContext {
  req: RestRequest;
  admin: boolean;
  embeddedFlavor: boolean;
  extendedAttributes: boolean;
  hostStatus: boolean;
  locked: boolean;
  description: boolean;
  tags: boolean;
  services: ComputeService[] | undefined;
}

export function viewContext(req: RestRequest, services?: ComputeService[]): ViewContext {
  const v = req.version;
  return {
    req,
    admin: req.caller.isAdmin,
    embeddedFlavor: at(v, "embeddedFlavor"),
    extendedAttributes: at(v, "extendedServerAttributes"),
    hostStatus: at(v, "serverHostStatus"),
    locked: at(v, "serverLocked"),
    description: at(v, "serverDescription"),
    tags: at(v, "serverTags"),
    services,
  };
}

function flavorOf(ctx: ViewContext, s: Server) {
  const { req } = ctx;
  const f = s.flavor;
  if (!f) return {};
  if (ctx.embeddedFlavor) {
    return {
      vcpus: f.vcpus,
      ram: f.ramMb,
      disk: f.diskGb,
      ephemeral: f.ephemeralGb,
      swap: f.swapMb,
      original_name: f.name,
      extra_specs: f.extraSpecs,
    };
  }
  return { id: f.id, links: [{ rel: "bookmark", href: `${req.hostUrl}/flavors/${f.id}` }] };
}

export function serverDetail(ctx: ViewContext, s: Server) {
  const { req, admin } = ctx;
  const view: Record<string, unknown> = {
    id: s.id,
    name: s.name,
    status: s.status,
    tenant_id: s.projectId,
    user_id: s.userId,
    metadata: s.metadata,
    hostId: hostId(s),
    image: s.imageRef
      ? { id: s.imageRef, links: [{ rel: "bookmark", href: `${req.hostUrl}/images/${s.imageRef}` }] }
      : "",
    flavor: flavorOf(ctx, s),
    created: isoTime(s.createdAt),
    updated: isoTime(s.updatedAt),
    addresses: addressesOf(s),
    accessIPv4: "",
    accessIPv6: "",
    links: links(req, "servers", s.id),
    "OS-DCF:diskConfig": "MANUAL",
    "OS-EXT-AZ:availability_zone": s.availabilityZone || "nova",
    config_drive: "",
    key_name: s.keyName || null,
    "OS-SRV-USG:launched_at": isoTime(s.launchedAt),
    "OS-SRV-USG:terminated_at": isoTime(s.terminatedAt),
    "OS-EXT-STS:task_state": s.taskState || null,
    "OS-EXT-STS:vm_state": s.vmState,
    "OS-EXT-STS:power_state": s.powerState,
    "os-extended-volumes:volumes_attached": [],
  };
  if (s.addresses.length) view.security_groups = [{ name: "default" }];
  if (PROGRESS_STATUSES.has(s.status)) view.progress = s.progress;
  if (admin) {
    view["OS-EXT-SRV-ATTR:host"] = s.host || null;
    view["OS-EXT-SRV-ATTR:hypervisor_hostname"] = s.hypervisorHostname || null;
    view["OS-EXT-SRV-ATTR:instance_name"] = s.instanceName;
    if (ctx.extendedAttributes) {
      view["OS-EXT-SRV-ATTR:reservation_id"] = s.reservationId;
      view["OS-EXT-SRV-ATTR:launch_index"] = s.launchIndex;
      view["OS-EXT-SRV-ATTR:hostname"] = s.hostname || s.name;
      view["OS-EXT-SRV-ATTR:kernel_id"] = "";
      view["OS-EXT-SRV-ATTR:ramdisk_id"] = "";
      view["OS-EXT-SRV-ATTR:root_device_name"] = null;
      view["OS-EXT-SRV-ATTR:user_data"] = s.userData || null;
    }
    if (ctx.hostStatus) {
      const svc = ctx.services?.find((x) => x.host === s.host);
      view.host_status = !s.host
        ? ""
        : !svc
          ? "UNKNOWN"
          : svc.status === "disabled"
            ? "MAINTENANCE"
            : svc.state === "up"
              ? "UP"
              : "DOWN";
    }
  }
  if (ctx.locked) view.locked = false;
  if (ctx.description) view.description = s.description || null;
  if (ctx.tags) view.tags = [];
  if (s.fault && (s.status === "ERROR" || s.status === "DELETED")) {
    const showDetails = admin || s.fault.code !== 500;
    view.fault = {
      code: s.fault.code || 500,
      message: s.fault.message.slice(0, 255),
      created: isoTime(s.fault.createdAt),
      ...(showDetails && s.fault.details ? { details: s.fault.details } : {}),
    };
  }
  return view;
}
