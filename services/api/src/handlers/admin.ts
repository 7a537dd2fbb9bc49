// os-services (from the conductor's heartbeat registry) and os-hypervisors (hosts from the
// compute-agent, capacity and usage from placement). Admin only, as in Nova's default policy.
import type { MessageShape } from "@bufbuild/protobuf";
import type { ComputeServiceSchema } from "@stratus/contracts/compute/v1";
import type { HostSchema } from "@stratus/contracts/computeagent/v1";
import { StratusError } from "@stratus/runtime";
import type { ApiDeps } from "../deps.js";
import type { RestRequest, Router } from "../http/router.js";
import { at } from "../microversion.js";
import { invalid, isoTime, nextLink, paging, queryParam, requireAdmin } from "./common.js";

type ComputeService = MessageShape<typeof ComputeServiceSchema>;
type Host = MessageShape<typeof HostSchema>;

/** Integer ids (before 2.53) derived from the UUIDs, so that they stay put when hosts come and go. */
export function intId(uuid: string): number {
  const hex = uuid.replace(/-/g, "").slice(0, 8);
  const n = Number.parseInt(hex, 16);
  return Number.isFinite(n) ? n & 0x7fffffff || 1 : 1;
}

function serviceView(req: RestRequest, s: ComputeService) {
  return {
    id: intId(s.id),
    binary: s.binary,
    host: s.host,
    zone: s.zone,
    status: s.status,
    state: s.state,
    updated_at: isoTime(s.updatedAt),
    disabled_reason: s.disabledReason || null,
    ...(at(req.version, "serviceForcedDown") ? { forced_down: s.forcedDown } : {}),
  };
}

interface Hypervisor {
  host: Host;
  service?: ComputeService | undefined;
  inventory: Record<string, { total: number; reserved: number; ratio: number }>;
  usage: Record<string, number>;
}

async function hypervisors(deps: ApiDeps): Promise<Hypervisor[]> {
  const [{ hosts }, { services }] = await Promise.all([
    deps.computeAgent.listHosts({}),
    deps.conductor.listComputeServices({ binary: "nova-compute" }),
  ]);
  const sorted = [...hosts].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return Promise.all(
    sorted.map(async (host) => {
      const [inv, use] = await Promise.all([
        deps.placement.getInventories({ providerUuid: host.computeNodeUuid }).catch(() => undefined),
        deps.placement.getUsages({ providerUuid: host.computeNodeUuid }).catch(() => undefined),
      ]);
      const inventory: Hypervisor["inventory"] = {};
      for (const i of inv?.inventories ?? []) {
        inventory[i.resourceClass] = {
          total: Number(i.total),
          reserved: Number(i.reserved),
          ratio: i.allocationRatio || 1,
        };
      }
      const usage: Record<string, number> = {};
      for (const [rc, n] of Object.entries(use?.usages ?? {})) usage[rc] = Number(n);
      return { host, service: services.find((s) => s.host === host.name), inventory, usage };
    }),
  );
}

function stats(h: Hypervisor) {
  const total = (rc: string, fallback: number | bigint) => h.inventory[rc]?.total ?? Number(fallback);
  const used = (rc: string) => h.usage[rc] ?? 0;
  const vcpus = total("VCPU", h.host.vcpus);
  const memory = total("MEMORY_MB", h.host.memoryMb);
  const disk = total("DISK_GB", h.host.diskGb);
  return {
    vcpus,
    vcpus_used: used("VCPU"),
    memory_mb: memory,
    memory_mb_used: used("MEMORY_MB"),
    local_gb: disk,
    local_gb_used: used("DISK_GB"),
    free_ram_mb: memory - used("MEMORY_MB"),
    free_disk_gb: disk - used("DISK_GB"),
    current_workload: 0,
    running_vms: h.host.runningInstances,
    disk_available_least: disk - used("DISK_GB"),
  };
}

function summary(h: Hypervisor) {
  return {
    id: intId(h.host.computeNodeUuid),
    hypervisor_hostname: h.host.name,
    state: h.service?.state ?? "down",
    status: h.service?.status ?? "enabled",
  };
}

function detail(h: Hypervisor) {
  return {
    ...summary(h),
    host_ip: h.host.hostIp || null,
    hypervisor_type: h.host.hypervisorType || "fake",
    hypervisor_version: 1000,
    service: {
      host: h.host.name,
      id: h.service ? intId(h.service.id) : null,
      disabled_reason: h.service?.disabledReason || null,
    },
    cpu_info: "{}",
    ...stats(h),
  };
}

function pageOf(req: RestRequest, list: Hypervisor[]): { items: Hypervisor[]; next?: number } {
  if (!at(req.version, "hypervisorPaging")) return { items: list };
  const { limit, marker } = paging(req);
  let start = 0;
  if (marker !== undefined) {
    start = list.findIndex((h) => String(intId(h.host.computeNodeUuid)) === marker) + 1;
    if (start === 0) throw invalid(`marker [${marker}] not found`);
  }
  const items = list.slice(start, start + limit);
  const full = req.query.has("limit") && items.length === limit && limit > 0;
  return full ? { items, next: intId(items[items.length - 1]!.host.computeNodeUuid) } : { items };
}

export function adminRoutes(router: Router, deps: ApiDeps): void {
  router.add("GET", "/os-services", async (req) => {
    requireAdmin(req.caller, "os_compute_api:os-services:list");
    const { services } = await deps.conductor.listComputeServices({
      binary: queryParam(req, "binary") ?? "",
      host: queryParam(req, "host") ?? "",
    });
    return { status: 200, body: { services: services.map((s) => serviceView(req, s)) } };
  });

  const list = (collection: string, view: (h: Hypervisor) => object) => async (req: RestRequest) => {
    requireAdmin(req.caller, "os_compute_api:os-hypervisors:list");
    const { items, next } = pageOf(req, await hypervisors(deps));
    return {
      status: 200,
      body: {
        hypervisors: items.map(view),
        ...(next !== undefined
          ? { hypervisors_links: nextLink(req, collection, String(next), items.length) }
          : {}),
      },
    };
  };
  router.add("GET", "/os-hypervisors", list("os-hypervisors", summary));
  router.add("GET", "/os-hypervisors/detail", list("os-hypervisors/detail", detail));
  router.add("GET", "/os-hypervisors/statistics", async (req) => {
    requireAdmin(req.caller, "os_compute_api:os-hypervisors:statistics");
    const all = (await hypervisors(deps)).map(stats);
    const sum = (k: keyof ReturnType<typeof stats>) => all.reduce((a, s) => a + s[k], 0);
    return {
      status: 200,
      body: {
        hypervisor_statistics: {
          count: all.length,
          vcpus: sum("vcpus"),
          vcpus_used: sum("vcpus_used"),
          memory_mb: sum("memory_mb"),
          memory_mb_used: sum("memory_mb_used"),
          local_gb: sum("local_gb"),
          local_gb_used: sum("local_gb_used"),
          free_ram_mb: sum("free_ram_mb"),
          free_disk_gb: sum("free_disk_gb"),
          current_workload: sum("current_workload"),
          running_vms: sum("running_vms"),
          disk_available_least: sum("disk_available_least"),
        },
      },
    };
  });
  router.add("GET", "/os-hypervisors/:id", async (req) => {
    requireAdmin(req.caller, "os_compute_api:os-hypervisors:show");
    const id = req.params.id!;
    const h = (await hypervisors(deps)).find(
      (x) => String(intId(x.host.computeNodeUuid)) === id || x.host.computeNodeUuid === id,
    );
    if (!h) throw new StratusError("not_found", `Hypervisor with ID ${id} could not be found.`);
    return { status: 200, body: { hypervisor: detail(h) } };
  });
}
