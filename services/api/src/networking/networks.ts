// Networks and segments: provider attributes (one segment) or multi-provider `segments`,
// shared, router:external, is_default, mtu, status; provider attributes are shown to admins only
// (Neutron's policy). The network-adapter decides who may do what; this file translates.
import type { MessageInitShape, MessageShape } from "@bufbuild/protobuf";
import type { NetworkSchema, SegmentSchema } from "@stratus/contracts/network/v1";
import type { NetworkDeps } from "./deps.js";
import { badRequest, notFound } from "./faults.js";
import { projectOf } from "./project.js";
import { type Attrs, neutronTime, onlyKeys, registerResource, textOf } from "./resource.js";
import type { NetRequest, NetRouter } from "./router.js";

type Network = MessageShape<typeof NetworkSchema>;
type Segment = MessageShape<typeof SegmentSchema>;
type SegmentInit = MessageInitShape<typeof SegmentSchema>;

const PROVIDER_TYPE = "provider:network_type";
const PROVIDER_PHYSNET = "provider:physical_network";
const PROVIDER_SEGID = "provider:segmentation_id";

const NETWORK_ATTRS: Attrs = {
  name: { type: "string", post: true, put: true },
  description: { type: "string", post: true, put: true },
  admin_state_up: { type: "bool", post: true, put: true },
  shared: { type: "bool", post: true, put: true },
  "router:external": { type: "bool", post: true, put: true },
  is_default: { type: "bool", post: true, put: true },
  mtu: { type: "int", post: true, put: true },
  project_id: { type: "string", post: true },
  tenant_id: { type: "string", post: true },
  [PROVIDER_TYPE]: { type: "string", post: true },
  [PROVIDER_PHYSNET]: { type: "string_or_null", post: true },
  [PROVIDER_SEGID]: { type: "int_or_null", post: true },
  segments: { type: "object_list", post: true },
};

const SEGMENT_ATTRS: Attrs = {
  network_id: { type: "uuid", post: true, required: true },
  network_type: { type: "string", post: true, required: true },
  physical_network: { type: "string_or_null", post: true },
  segmentation_id: { type: "int_or_null", post: true },
  name: { type: "string_or_null", post: true, put: true },
  description: { type: "string", post: true, put: true },
  project_id: { type: "string", post: true },
  tenant_id: { type: "string", post: true },
};

/** A segment's provider attributes (a multi-provider `segments` element). */
function providerView(s: Segment) {
  return {
    [PROVIDER_TYPE]: s.networkType,
    [PROVIDER_PHYSNET]: s.physicalNetwork || null,
    [PROVIDER_SEGID]: s.segmentationId || null,
  };
}

export function networkView(req: NetRequest, n: Network): Record<string, unknown> {
  const view: Record<string, unknown> = {
    id: n.id,
    name: n.name,
    description: n.description,
    project_id: n.projectId,
    tenant_id: n.projectId,
    admin_state_up: n.adminStateUp,
    status: n.status,
    shared: n.shared,
    "router:external": n.routerExternal,
    is_default: n.isDefault,
    mtu: n.mtu,
    l2_adjacency: n.l2Adjacency,
    subnets: n.subnetIds,
    created_at: neutronTime(n.createdAt),
    updated_at: neutronTime(n.updatedAt),
    revision_number: Number(n.revisionNumber),
  };
  // Neutron (ML2): one segment shows as the provider attributes, several as `segments`.
  if (req.caller.isAdmin) {
    if (n.segments.length === 1) Object.assign(view, providerView(n.segments[0]!));
    else if (n.segments.length > 1) view.segments = n.segments.map(providerView);
  }
  return view;
}

export function segmentView(_req: NetRequest, s: Segment): Record<string, unknown> {
  return {
    id: s.id,
    network_id: s.networkId,
    name: s.name || null,
    description: s.description,
    network_type: s.networkType,
    physical_network: s.physicalNetwork || null,
    segmentation_id: s.segmentationId || null,
    created_at: neutronTime(s.createdAt),
    updated_at: neutronTime(s.updatedAt),
    revision_number: Number(s.revisionNumber),
  };
}

/** The segments a network create asks for: provider attributes or `segments`, never both. */
function requestedSegments(body: Record<string, unknown>): SegmentInit[] {
  const provider = [PROVIDER_TYPE, PROVIDER_PHYSNET, PROVIDER_SEGID].some((k) => body[k] != null);
  const list = body.segments as Record<string, unknown>[] | undefined;
  if (provider && list) throw badRequest("Segments and provider values cannot both be set.");
  const one = (o: Record<string, unknown>, where: string): SegmentInit => {
    const segid = o[PROVIDER_SEGID];
    if (segid != null && (typeof segid !== "number" || !Number.isSafeInteger(segid))) {
      if (!(typeof segid === "string" && /^\d{1,10}$/.test(segid))) {
        throw badRequest(`Invalid input for ${where}. Reason: '${String(segid)}' is not an integer.`);
      }
    }
    const networkType = textOf(where, o, PROVIDER_TYPE, { optional: true });
    if (!networkType) {
      throw badRequest(`Invalid input for operation: network_type required.`);
    }
    return {
      networkType,
      physicalNetwork: textOf(where, o, PROVIDER_PHYSNET, { optional: true }),
      segmentationId: segid == null ? 0 : Number(segid),
    };
  };
  if (provider) return [one(body, PROVIDER_TYPE)];
  if (!list) return [];
  if (!list.length) throw badRequest("Invalid input for segments. Reason: the list is empty.");
  return list.map((o) => {
    onlyKeys("segments", o, [PROVIDER_TYPE, PROVIDER_PHYSNET, PROVIDER_SEGID]);
    return one(o, "segments");
  });
}

export function networkRoutes(router: NetRouter, deps: NetworkDeps): void {
  const net = deps.network;
  registerResource<Network>(router, {
    singular: "network",
    collection: "networks",
    attrs: NETWORK_ATTRS,
    id: (n) => n.id,
    view: networkView,
    list: async (_req, query) => {
      const r = await net.listNetworks({ query });
      return { items: r.networks, hasMore: r.hasMore };
    },
    get: async (_req, id) => (await net.getNetwork({ id })).network!,
    create: async (_req, b) => {
      const segments = requestedSegments(b);
      const r = await net.createNetwork({
        name: (b.name as string | undefined) ?? "",
        description: (b.description as string | undefined) ?? "",
        projectId: projectOf(b),
        shared: b.shared === true,
        routerExternal: b["router:external"] === true,
        isDefault: b.is_default === true,
        mtu: (b.mtu as number | undefined) ?? 0,
        segments,
        ...(b.admin_state_up === undefined ? {} : { adminStateUp: b.admin_state_up as boolean }),
      });
      return r.network!;
    },
    update: async (_req, id, b) => {
      const r = await net.updateNetwork({
        id,
        name: b.name as string | undefined,
        description: b.description as string | undefined,
        shared: b.shared as boolean | undefined,
        isDefault: b.is_default as boolean | undefined,
        adminStateUp: b.admin_state_up as boolean | undefined,
        routerExternal: b["router:external"] as boolean | undefined,
        mtu: b.mtu as number | undefined,
      });
      return r.network!;
    },
    remove: async (_req, id) => {
      await net.deleteNetwork({ id });
    },
  });

  registerResource<Segment>(router, {
    singular: "segment",
    collection: "segments",
    attrs: SEGMENT_ATTRS,
    id: (s) => s.id,
    view: segmentView,
    // Neutron's policy shows segments to admins only (as the provider attributes they are): a
    // non-admin lists none and finds none.
    list: async (req, query) => {
      if (!req.caller.isAdmin) return { items: [], hasMore: false };
      const r = await net.listSegments({ query });
      return { items: r.segments, hasMore: r.hasMore };
    },
    get: async (req, id) => {
      if (!req.caller.isAdmin) throw notFound("SegmentNotFound", `Segment ${id} could not be found.`);
      return (await net.getSegment({ id })).segment!;
    },
    create: async (_req, b) => {
      projectOf(b);
      const r = await net.createSegment({
        segment: {
          networkId: b.network_id as string,
          networkType: b.network_type as string,
          physicalNetwork: (b.physical_network as string | null | undefined) ?? "",
          segmentationId: (b.segmentation_id as number | null | undefined) ?? 0,
          name: (b.name as string | null | undefined) ?? "",
          description: (b.description as string | undefined) ?? "",
        },
      });
      return r.segment!;
    },
    update: async (_req, id, b) => {
      const r = await net.updateSegment({
        id,
        ...(b.name === undefined ? {} : { name: (b.name as string | null) ?? "" }),
        description: b.description as string | undefined,
      });
      return r.segment!;
    },
    remove: async (_req, id) => {
      await net.deleteSegment({ id });
    },
  });
}
