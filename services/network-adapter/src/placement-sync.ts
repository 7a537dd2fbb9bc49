// Keeps placement in step with the network (design.md §1, agreements "Segment placement"):
// every segment with a physical network and at least one subnet is a sharing resource provider
// (uuid = segment id, name segment-<id>) with IPV4_ADDRESS inventory, trait
// MISC_SHARES_VIA_AGGREGATE and aggregate = segment id; that aggregate is added to the
// compute-node providers of the hosts mapped to the segment.
//
// Every step reads placement and writes only differences (idempotent; safe for several
// network-adapter processes thanks to placement's generations). Work is queued as "dirty"
// segments and hosts; a failed pass (placement down, generation race) stays queued and is retried
// in the background with back-off. At start-up everything is queued: drift is repaired.
import type { PlacementService } from "@stratus/contracts/scheduler/v1/placement";
import {
  type Database,
  isStratusError,
  type Logger,
  runWithContext,
  type serviceClient,
  systemContext,
} from "@stratus/runtime";
import { reservesAddressesSql } from "./core/rules.js";

type Placement = ReturnType<typeof serviceClient<typeof PlacementService>>;

export const SHARING_TRAIT = "MISC_SHARES_VIA_AGGREGATE";

interface SegmentState {
  id: string;
  physical_network: string;
  subnets: string;
  total: string | null;
  reserved: string | null;
}

export class PlacementSync {
  private readonly segments = new Set<string>();
  private readonly removed = new Set<string>();
  private readonly hosts = new Set<string>();
  private running: Promise<void> | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  private backoffMs = 500;
  private closed = false;

  constructor(
    private readonly db: Database,
    private readonly placement: Placement,
    private readonly logger: Logger,
  ) {}

  /** Queues work and starts a pass; resolves when the pass ends or after waitMs, never throws. */
  async kick(
    work: { segments?: Iterable<string>; removed?: Iterable<string>; hosts?: Iterable<string> },
    waitMs = 5000,
  ): Promise<void> {
    for (const s of work.segments ?? []) this.segments.add(s);
    for (const s of work.removed ?? []) this.removed.add(s);
    for (const h of work.hosts ?? []) this.hosts.add(h);
    if (!this.segments.size && !this.removed.size && !this.hosts.size) return;
    const pass = this.start();
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([pass, new Promise((r) => (timer = setTimeout(r, waitMs).unref()))]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Queues every segment and host (start-up repair). */
  async reconcileAll(): Promise<void> {
    const segs = await this.db.query<{ id: string }>("SELECT id FROM segments");
    const hosts = await this.db.query<{ host: string }>("SELECT host FROM hosts");
    await this.kick({ segments: segs.map((s) => s.id), hosts: hosts.map((h) => h.host) }, 0);
  }

  close(): void {
    this.closed = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
  }

  private start(): Promise<void> {
    if (this.running) return this.running;
    this.running = runWithContext(systemContext(), () => this.drain()).finally(() => {
      this.running = undefined;
    });
    return this.running;
  }

  private async drain(): Promise<void> {
    while (!this.closed && (this.segments.size || this.removed.size || this.hosts.size)) {
      const segments = [...this.segments];
      const removed = [...this.removed];
      this.segments.clear();
      this.removed.clear();
      let failed = false;
      for (const id of removed) {
        try {
          await this.removeSegment(id);
        } catch (err) {
          failed = true;
          this.removed.add(id);
          this.logger.warn({ err, segment: id }, "placement: removing segment provider failed; will retry");
        }
      }
      for (const id of segments) {
        try {
          for (const h of await this.syncSegment(id)) this.hosts.add(h);
        } catch (err) {
          failed = true;
          this.segments.add(id);
          this.logger.warn({ err, segment: id }, "placement: segment sync failed; will retry");
        }
      }
      const hosts = [...this.hosts];
      this.hosts.clear();
      for (const host of hosts) {
        try {
          await this.syncHost(host, removed);
        } catch (err) {
          failed = true;
          this.hosts.add(host);
          this.logger.warn({ err, host }, "placement: host aggregate sync failed; will retry");
        }
      }
      if (failed) {
        this.scheduleRetry();
        return;
      }
      this.backoffMs = 500;
    }
  }

  private scheduleRetry(): void {
    if (this.closed || this.retryTimer) return;
    const delay = this.backoffMs;
    this.backoffMs = Math.min(this.backoffMs * 2, 5000);
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      void this.start();
    }, delay);
    this.retryTimer.unref();
  }

  /** What the segment's provider should hold (null: it should not exist). */
  private async desired(id: string): Promise<{ total: number; reserved: number; physnet: string } | null> {
    const [row] = await this.db.query<SegmentState & Record<string, unknown>>(
      `SELECT s.id, s.physical_network,
         (SELECT count(*) FROM subnets sn WHERE sn.segment_id = s.id) AS subnets,
         (SELECT sum(p.last_ip - p.first_ip + 1) FROM allocation_pools p JOIN subnets sn ON sn.id = p.subnet_id
            WHERE sn.segment_id = s.id) AS total,
         (SELECT count(*) FROM ip_allocations a JOIN subnets sn ON sn.id = a.subnet_id JOIN ports po ON po.id = a.port_id
            WHERE sn.segment_id = s.id AND ${reservesAddressesSql("po")}
              AND EXISTS (SELECT 1 FROM allocation_pools p WHERE p.subnet_id = a.subnet_id AND a.ip BETWEEN p.first_ip AND p.last_ip)) AS reserved
       FROM segments s WHERE s.id = $1`,
      [id],
    );
    if (!row?.physical_network || Number(row.subnets) === 0) return null;
    const total = Number(row.total ?? 0);
    return { total, reserved: Math.min(Number(row.reserved ?? 0), total), physnet: row.physical_network };
  }

  private async hostsOn(physnet: string): Promise<string[]> {
    const rows = await this.db.query<{ host: string }>(
      "SELECT host FROM hosts WHERE $1 = ANY(physical_networks)",
      [physnet],
    );
    return rows.map((r) => r.host);
  }

  /** Brings one segment's provider in line; returns the hosts whose aggregates must be checked. */
  private async syncSegment(id: string): Promise<string[]> {
    const want = await this.desired(id);
    if (!want) {
      const [seg] = await this.db.query<{ physical_network: string }>(
        "SELECT physical_network FROM segments WHERE id = $1",
        [id],
      );
      // A segment without a physical network (a tenant network's tunnel) never has a provider.
      if (seg && !seg.physical_network) return [];
      await this.removeSegment(id);
      return seg?.physical_network ? this.hostsOn(seg.physical_network) : [];
    }
    await this.placement.ensureResourceProvider({ uuid: id, name: `segment-${id}` });
    await this.withGeneration(async () => {
      const inv = await this.placement.getInventories({ providerUuid: id });
      const current = inv.inventories.find((i) => i.resourceClass === "IPV4_ADDRESS");
      const others = inv.inventories.filter((i) => i.resourceClass !== "IPV4_ADDRESS");
      if (want.total < 1) {
        if (!current) return;
        await this.placement.setInventories({
          providerUuid: id,
          providerGeneration: inv.providerGeneration,
          inventories: others,
        });
        return;
      }
      if (current && Number(current.total) === want.total && Number(current.reserved) === want.reserved)
        return;
      await this.placement.setInventories({
        providerUuid: id,
        providerGeneration: inv.providerGeneration,
        inventories: [
          ...others,
          {
            resourceClass: "IPV4_ADDRESS",
            total: BigInt(want.total),
            reserved: BigInt(want.reserved),
            minUnit: 1n,
            maxUnit: 1n,
            stepSize: 1n,
            allocationRatio: 1,
          },
        ],
      });
    });
    await this.withGeneration(async () => {
      const t = await this.placement.getTraits({ providerUuid: id });
      if (t.traits.includes(SHARING_TRAIT)) return;
      await this.placement.setTraits({
        providerUuid: id,
        providerGeneration: t.providerGeneration,
        traits: [...t.traits, SHARING_TRAIT],
      });
    });
    await this.withGeneration(async () => {
      const a = await this.placement.getAggregates({ providerUuid: id });
      if (a.aggregateUuids.includes(id)) return;
      await this.placement.setAggregates({
        providerUuid: id,
        providerGeneration: a.providerGeneration,
        aggregateUuids: [...a.aggregateUuids, id],
      });
    });
    return this.hostsOn(want.physnet);
  }

  private async removeSegment(id: string): Promise<void> {
    try {
      await this.placement.deleteResourceProvider({ uuid: id });
    } catch (err) {
      if (isStratusError(err, "not_found")) return;
      throw err;
    }
    // Its aggregate must leave every compute node.
    const hosts = await this.db.query<{ host: string }>("SELECT host FROM hosts");
    for (const h of hosts) this.hosts.add(h.host);
    this.removed.delete(id);
    this.removedAggregates.add(id);
  }

  private readonly removedAggregates = new Set<string>();

  /** A compute node's aggregates: ours that apply, none of ours that do not, others untouched. */
  private async syncHost(host: string, removed: string[]): Promise<void> {
    const [row] = await this.db.query<{ compute_node_uuid: string; physical_networks: string[] }>(
      "SELECT compute_node_uuid, physical_networks FROM hosts WHERE host = $1",
      [host],
    );
    if (!row?.compute_node_uuid) return;
    const all = await this.db.query<{ id: string; physical_network: string; subnets: string }>(
      `SELECT s.id, s.physical_network, (SELECT count(*) FROM subnets sn WHERE sn.segment_id = s.id) AS subnets
       FROM segments s WHERE s.physical_network <> ''`,
    );
    const ours = new Set([...all.map((s) => s.id), ...removed, ...this.removedAggregates]);
    const wanted = new Set(
      all
        .filter((s) => Number(s.subnets) > 0 && row.physical_networks.includes(s.physical_network))
        .map((s) => s.id),
    );
    await this.withGeneration(async () => {
      const a = await this.placement.getAggregates({ providerUuid: row.compute_node_uuid });
      const next = a.aggregateUuids.filter((u) => !ours.has(u) || wanted.has(u));
      for (const w of wanted) if (!next.includes(w)) next.push(w);
      const same = next.length === a.aggregateUuids.length && next.every((u) => a.aggregateUuids.includes(u));
      if (same) return;
      await this.placement.setAggregates({
        providerUuid: row.compute_node_uuid,
        providerGeneration: a.providerGeneration,
        aggregateUuids: next,
      });
    });
  }

  /** Runs a read-modify-write against placement, again on a generation conflict. */
  private async withGeneration(step: () => Promise<void>): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await step();
      } catch (err) {
        if (!isStratusError(err, "conflict") || attempt >= 10) throw err;
        await new Promise((r) => setTimeout(r, Math.random() * 20 * attempt));
      }
    }
  }
}
