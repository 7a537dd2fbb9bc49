// The events of networks, segments, subnets and routers (ports: port-events.ts), queued in the
// outbox and published after the commit.
import {
  NetworkChangedSchema,
  RouterChangedSchema,
  SegmentChangedSchema,
  SubnetChangedSchema,
} from "@stratus/contracts/events/v1";
import { Subjects } from "@stratus/runtime";
import type { Outbox } from "./context.js";

export type Change = "created" | "updated" | "deleted";

const SUBJECTS = {
  network: {
    created: Subjects.networkCreated,
    updated: Subjects.networkUpdated,
    deleted: Subjects.networkDeleted,
  },
  segment: {
    created: Subjects.segmentCreated,
    updated: Subjects.segmentUpdated,
    deleted: Subjects.segmentDeleted,
  },
  subnet: {
    created: Subjects.subnetCreated,
    updated: Subjects.subnetUpdated,
    deleted: Subjects.subnetDeleted,
  },
  router: {
    created: Subjects.routerCreated,
    updated: Subjects.routerUpdated,
    deleted: Subjects.routerDeleted,
  },
} as const;

export function networkEvent(out: Outbox, change: Change, net: { id: string; projectId: string }): void {
  out.add(SUBJECTS.network[change], NetworkChangedSchema, {
    networkId: net.id,
    projectId: net.projectId,
    deleted: change === "deleted",
  });
}

export function segmentEvent(out: Outbox, change: Change, seg: { id: string; networkId: string }): void {
  out.add(SUBJECTS.segment[change], SegmentChangedSchema, {
    segmentId: seg.id,
    networkId: seg.networkId,
    deleted: change === "deleted",
  });
}

export function subnetEvent(
  out: Outbox,
  change: Change,
  sub: { id: string; networkId: string; segmentId: string; projectId?: string },
): void {
  out.add(SUBJECTS.subnet[change], SubnetChangedSchema, {
    subnetId: sub.id,
    networkId: sub.networkId,
    segmentId: sub.segmentId,
    projectId: sub.projectId ?? "",
    deleted: change === "deleted",
  });
}

export function routerEvent(out: Outbox, change: Change, router: { id: string; projectId: string }): void {
  out.add(SUBJECTS.router[change], RouterChangedSchema, {
    routerId: router.id,
    projectId: router.projectId,
    deleted: change === "deleted",
  });
}
