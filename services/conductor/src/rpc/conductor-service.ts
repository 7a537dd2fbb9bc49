// ConductorService over Connect: validation, project scoping and translation to the compute DB.
import type { MessageInitShape } from "@bufbuild/protobuf";
import { timestampDate, timestampFromDate } from "@bufbuild/protobuf/wkt";
import {
  ConductorService,
  type CreateServersRequest,
  type FlavorSchema,
  type InstanceActionSchema,
  NetworkMode,
  type ServerSchema,
} from "@stratus/contracts/compute/v1";
import {
  bindService,
  currentContext,
  invalidInput,
  isStratusError,
  newRequestId,
  type ServiceBinding,
  StratusError,
} from "@stratus/runtime";
import type { Auditor } from "../audit/auditor.js";
import type { Builder } from "../builds/builder.js";
import type { ServerChanges } from "../compute/changes.js";
import type { FlavorRecord, Flavors } from "../compute/flavors.js";
import type { Quotas } from "../compute/quotas.js";
import type { BuildCaller, ServerAcceptance } from "../compute/server-acceptance.js";
import { type ActionRecord, isUuid, type ServerRecord, type Servers, statusOf } from "../compute/servers.js";
import type { ServiceRegistry } from "../services/service-registry.js";

type ServerOut = MessageInitShape<typeof ServerSchema>;

export function flavorOut(f: FlavorRecord): MessageInitShape<typeof FlavorSchema> {
  return {
    id: f.id,
    name: f.name,
    vcpus: f.vcpus,
    ramMb: f.ramMb,
    diskGb: f.diskGb,
    ephemeralGb: f.ephemeralGb,
    swapMb: f.swapMb,
    rxtxFactor: f.rxtxFactor,
    isPublic: f.isPublic,
    extraSpecs: f.extraSpecs,
  };
}

export function serverOut(s: ServerRecord): ServerOut {
  return {
    id: s.id,
    name: s.name,
    projectId: s.projectId,
    userId: s.userId,
    flavor: flavorOut(s.flavor),
    imageRef: s.imageRef,
    vmState: s.deleted ? "deleted" : s.vmState,
    taskState: s.taskState,
    powerState: s.powerState,
    status: statusOf(s),
    host: s.host,
    hypervisorHostname: s.node,
    addresses: s.addresses,
    metadata: s.metadata,
    createdAt: timestampFromDate(s.createdAt),
    updatedAt: timestampFromDate(s.updatedAt),
    ...(s.launchedAt ? { launchedAt: timestampFromDate(s.launchedAt) } : {}),
    ...(s.terminatedAt ? { terminatedAt: timestampFromDate(s.terminatedAt) } : {}),
    ...(s.fault
      ? {
          fault: {
            code: s.fault.code,
            message: s.fault.message,
            details: s.fault.details,
            createdAt: timestampFromDate(s.fault.createdAt),
          },
        }
      : {}),
    reservationId: s.reservationId,
    launchIndex: s.launchIndex,
    keyName: s.keyName,
    availabilityZone: s.availabilityZone || "nova",
    userData: s.userData,
    hostname: s.hostname,
    description: s.description,
    deleted: s.deleted,
    instanceName: `instance-${s.id.slice(0, 8)}`,
    progress: s.vmState === "active" ? 100 : 0,
  };
}

function actionOut(a: ActionRecord): MessageInitShape<typeof InstanceActionSchema> {
  return {
    action: a.action,
    instanceUuid: a.instanceUuid,
    requestId: a.requestId,
    userId: a.userId,
    projectId: a.projectId,
    startTime: timestampFromDate(a.startTime),
    message: a.message,
    updatedAt: timestampFromDate(a.updatedAt),
    events: a.events.map((e) => ({
      event: e.event,
      startTime: timestampFromDate(e.startTime),
      ...(e.finishTime ? { finishTime: timestampFromDate(e.finishTime) } : {}),
      result: e.result,
      traceback: e.traceback,
      host: e.host,
    })),
  };
}

/**
 * The caller, from the principal the RPC pipeline made of its verified credential: a user sees its
 * project (all of them with the admin role); a service acting as itself is trusted like an admin.
 */
function caller() {
  const ctx = currentContext();
  return {
    requestId: ctx?.requestId ?? newRequestId(),
    userId: ctx?.userId ?? "",
    projectId: ctx?.projectId ?? "",
    isAdmin: ctx?.isAdmin ?? false,
  };
}

/**
 * The user a new build's steps act for: the accepting call's user (asserted by the api, or with
 * a token of its own); none when a service called as itself (the steps then act as the conductor).
 */
function buildCaller(): BuildCaller | undefined {
  const p = currentContext()?.principal;
  return p?.kind === "user" ? { userId: p.userId, projectId: p.projectId, roles: p.roles } : undefined;
}

/** The project a read is limited to: the caller's own unless admin. */
function readScope(): string | undefined {
  const c = caller();
  return c.isAdmin ? undefined : c.projectId;
}

const MAX_COUNT = 1000;

/** The times a changes_since may name: within what both JavaScript dates and PostgreSQL carry. */
const EARLIEST = new Date("0001-01-01T00:00:00Z");
const LATEST = new Date("9999-12-31T23:59:59.999Z");

export function conductorService(deps: {
  servers: Servers;
  acceptance: ServerAcceptance;
  quotas: Quotas;
  flavors: Flavors;
  builder: Builder;
  registry: ServiceRegistry;
  /** The mesh audit (AuditMesh). */
  auditor: Auditor;
  /** Told of the servers CreateServers wrote (stratus.server.changed). */
  changes?: ServerChanges;
  maxAttempts: number;
}): ServiceBinding {
  const { servers, acceptance, quotas, flavors, builder, registry } = deps;
  const createServers = async (req: CreateServersRequest) => {
    const c = caller();
    const projectId = req.projectId || c.projectId;
    const userId = req.userId || c.userId;
    if (!projectId) throw invalidInput("project_id is required");
    if (!c.isAdmin && projectId !== c.projectId)
      throw new StratusError("forbidden", "cannot create servers in another project");
    const name = req.name.trim();
    if (!name || name.length > 255) throw invalidInput("server name must be 1-255 characters");
    const minCount = req.minCount || 1;
    const maxCount = req.maxCount || minCount;
    if (minCount < 1 || maxCount < minCount || maxCount > MAX_COUNT) {
      throw invalidInput(`min_count must be >= 1 and max_count between min_count and ${MAX_COUNT}`);
    }
    let mode: "list" | "auto" | "none";
    switch (req.networkMode) {
      case NetworkMode.LIST:
        mode = "list";
        break;
      case NetworkMode.AUTO:
        mode = "auto";
        break;
      case NetworkMode.NONE:
        mode = "none";
        break;
      default:
        mode = req.networks.length ? "list" : "none";
    }
    if (mode !== "list" && req.networks.length)
      throw invalidInput(`networks must be empty with network mode ${mode}`);
    if (mode === "list" && !req.networks.length)
      throw invalidInput("network mode list needs at least one network or port");
    for (const n of req.networks) {
      if (!n.networkId && !n.portId) throw invalidInput("each network entry needs a network id or a port id");
      if (n.portId && !isUuid(n.portId)) throw invalidInput(`port id ${n.portId} is not a uuid`);
      if (n.networkId && !n.portId && !isUuid(n.networkId))
        throw invalidInput(`network id ${n.networkId} is not a uuid`);
    }
    const ports = req.networks.filter((n) => n.portId).map((n) => n.portId);
    if (ports.length && maxCount > 1)
      throw invalidInput("Unable to launch multiple instances with a single configured port ID.");
    if (new Set(ports).size !== ports.length) throw invalidInput("the same port is requested twice");
    for (const [k, v] of Object.entries(req.metadata)) {
      if (!k || k.length > 255 || v.length > 255)
        throw invalidInput("metadata keys and values must be 1-255 characters");
    }
    let flavor: FlavorRecord;
    try {
      flavor = await flavors.get(req.flavorId);
    } catch (err) {
      if (isStratusError(err, "not_found")) throw invalidInput(err.message);
      throw err;
    }
    const request = {
      name,
      flavor,
      imageRef: req.imageRef,
      minCount,
      maxCount,
      networkMode: mode,
      networks: req.networks.map((n) => ({
        networkId: n.networkId,
        portId: n.portId,
        fixedIp: n.fixedIp,
        tag: n.tag,
      })),
      metadata: req.metadata,
      userData: req.userData,
      clientToken: req.clientToken,
      projectId,
      userId,
      keyName: req.keyName,
      availabilityZone: req.availabilityZone,
      description: req.description,
      hostname: req.hostname,
      requestId: c.requestId,
      maxAttempts: deps.maxAttempts,
      caller: buildCaller(),
    };
    // New builds start leased to this replica, which runs them without a lease write first.
    const lease = builder.newLease();
    const result = await acceptance.create({ ...request, lease });
    deps.changes?.changed(projectId);
    for (const s of result.servers) {
      if (s.vmState !== "building") continue;
      if (result.created) builder.kickCreated(s, request, lease);
      else builder.kick(s.id);
    }
    return { reservationId: result.reservationId, servers: result.servers.map(serverOut) };
  };

  return bindService(ConductorService, {
    createServers: (req) => builder.accept(() => createServers(req)),

    async getServer(req) {
      const s = await servers.get(req.id, { projectId: readScope(), includeDeleted: req.includeDeleted });
      return { server: serverOut(s) };
    },

    async listServers(req) {
      const c = caller();
      let projectId: string | undefined;
      if (c.isAdmin)
        projectId = req.allProjects ? req.projectId || undefined : req.projectId || c.projectId || undefined;
      else projectId = c.projectId;
      if (req.limit < 0) throw invalidInput("limit must be >= 0");
      const changesSince = req.changesSince ? timestampDate(req.changesSince) : undefined;
      if (changesSince && !(changesSince >= EARLIEST && changesSince <= LATEST))
        throw invalidInput("changes_since must be within the years 1 to 9999");
      const list = await servers.list({
        projectId,
        name: req.name,
        status: req.status,
        host: req.host,
        flavorId: req.flavorId,
        imageRef: req.imageRef,
        changesSince,
        limit: req.limit,
        marker: req.marker,
        includeDeleted: req.includeDeleted,
        reservationId: req.reservationId,
      });
      return { servers: list.map(serverOut) };
    },

    async deleteServer(req) {
      const c = caller();
      const s = await servers.get(req.id, { projectId: readScope() });
      await builder.delete(s.id, {
        requestId: c.requestId,
        userId: c.userId,
        projectId: c.projectId || s.projectId,
      });
      return {};
    },

    async listInstanceActions(req) {
      const s = await servers.get(req.serverId, { projectId: readScope(), includeDeleted: true });
      return { actions: (await servers.actions(s.id)).map(actionOut) };
    },

    async getInstanceAction(req) {
      const s = await servers.get(req.serverId, { projectId: readScope(), includeDeleted: true });
      return { action: actionOut(await servers.action(s.id, req.requestId)) };
    },

    async listFlavors(req) {
      const c = caller();
      return { flavors: (await flavors.list(req.includePrivate && c.isAdmin)).map(flavorOut) };
    },

    async getFlavor(req) {
      return { flavor: flavorOut(await flavors.get(req.id)) };
    },

    async createFlavor(req) {
      if (!caller().isAdmin)
        throw new StratusError(
          "forbidden",
          "Policy doesn't allow os_compute_api:os-flavor-manage:create to be performed.",
        );
      const f = req.flavor;
      if (!f) throw invalidInput("a flavor is required");
      const created = await flavors.create(
        {
          id: f.id,
          name: f.name,
          vcpus: f.vcpus,
          ramMb: f.ramMb,
          diskGb: f.diskGb,
          ephemeralGb: f.ephemeralGb,
          swapMb: f.swapMb,
          rxtxFactor: f.rxtxFactor,
          isPublic: f.isPublic,
          extraSpecs: f.extraSpecs,
        },
        () => crypto.randomUUID(),
      );
      return { flavor: flavorOut(created) };
    },

    async getLimits(req) {
      const c = caller();
      const projectId = c.isAdmin ? req.projectId || c.projectId : c.projectId;
      if (!projectId) throw invalidInput("project_id is required");
      const [limits, used] = await Promise.all([quotas.limitsOf(projectId), quotas.usageOf(projectId)]);
      return {
        maxInstances: limits.instances,
        maxCores: limits.cores,
        maxRamMb: limits.ram,
        instancesUsed: used.instances,
        coresUsed: used.cores,
        ramMbUsed: used.ram,
        maxMetadataItems: 128,
        maxKeyPairs: 100,
        maxServerGroups: 10,
        maxServerGroupMembers: 10,
      };
    },

    async listComputeServices(req) {
      const list = await registry.list({ binary: req.binary, host: req.host });
      return { services: list.map((s) => ({ ...s, updatedAt: timestampFromDate(s.updatedAt) })) };
    },

    async auditMesh(req) {
      const result = await deps.auditor.run({ fix: req.fix });
      return {
        findings: result.findings.map((f) => ({
          kind: f.kind,
          subject: f.subject,
          detail: f.detail,
          fix: f.fix,
          repairable: f.repair !== undefined,
        })),
        repairs: result.repairs,
        checkedAt: timestampFromDate(result.checkedAt),
      };
    },
  });
}
