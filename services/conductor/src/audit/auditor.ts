// The audit's reads and repairs (docs/audit.md); the checks are checks.ts's. One pass reads
// placement and the network, then this conductor's servers and builds, then placement and the
// network again, and reports only the findings both reads agree on: whatever a build or delete
// changed between two reads (a port deleted just before its server was marked deleted, a claim
// made just after its server's row was read) is in one read's findings only. A finding present in
// both is a state the owners kept across the conductor's read.
//
// Repairs (fix) go through the owners' RPCs, as the caller (an admin, or the conductor itself):
// delete an orphan consumer's allocations (placement audit --delete), delete an orphan port its
// build created, unbind and clear the device of an orphan port the user brought, and set a
// settled server's IPv4 claims on segments to the addresses its ports hold there when those
// differences are the whole of a segment's usage mismatch (heal_allocations; guarded by the
// consumer generation the audit read, so a claim changed since is left as it is). Each repair is
// logged as one structured line (audit: "repair") with what was done and why.

import { timestampDate } from "@bufbuild/protobuf/wkt";
import type { Client } from "@connectrpc/connect";
import type { NetworkService } from "@stratus/contracts/network/v1";
import type { PlacementService } from "@stratus/contracts/scheduler/v1/placement";
import { type Database, isStratusError, type Logger } from "@stratus/runtime";
import {
  type AuditConsumer,
  type AuditPort,
  type AuditServer,
  audit,
  confirmed,
  type EndedServer,
  type Finding,
  isComputePort,
} from "./checks.js";

export interface RepairRecord {
  kind: string;
  subject: string;
  action: string;
  ok: boolean;
  error: string;
}

export interface AuditResult {
  findings: Finding[];
  repairs: RepairRecord[];
  checkedAt: Date;
}

interface Peers {
  consumers: AuditConsumer[];
  ports: AuditPort[];
  segmentIds: string[];
}

export class Auditor {
  constructor(
    private readonly o: {
      db: Database;
      placement: () => Client<typeof PlacementService>;
      network: () => Client<typeof NetworkService> | undefined;
      logger: Logger;
      /** Entries younger than this are left alone (writes in progress elsewhere). */
      graceMs: number;
    },
  ) {}

  async run(options: { fix?: boolean } = {}): Promise<AuditResult> {
    const first = await this.readPeers();
    const servers = await this.readServers();
    const second = await this.readPeers();
    const now = new Date();
    const ended = await this.readEnded(servers, [...first.ports, ...second.ports]);
    const snapshot = (p: Peers) => ({ servers, ended, ...p, now, graceMs: this.o.graceMs });
    const findings = confirmed(audit(snapshot(first)), audit(snapshot(second)));
    const repairs: RepairRecord[] = [];
    if (options.fix) {
      for (const f of findings) {
        if (f.repair) repairs.push(await this.repair(f));
      }
    }
    return { findings, repairs, checkedAt: now };
  }

  private async readPeers(): Promise<Peers> {
    const network = this.o.network();
    const [placed, held] = await Promise.all([
      this.o.placement().listConsumers({}),
      network ? network.listPortHoldings({}) : Promise.resolve({ ports: [], providerSegmentIds: [] }),
    ]);
    return {
      segmentIds: held.providerSegmentIds,
      consumers: placed.consumers.map((c) => ({
        uuid: c.uuid,
        projectId: c.projectId,
        userId: c.userId,
        generation: Number(c.generation),
        updatedAt: c.updatedAt ? timestampDate(c.updatedAt) : new Date(0),
        allocations: c.allocations.map((a) => ({
          providerUuid: a.providerUuid,
          resources: Object.fromEntries(Object.entries(a.resources).map(([rc, n]) => [rc, Number(n)])),
        })),
      })),
      ports: held.ports.map((p) => ({
        id: p.portId,
        networkId: p.networkId,
        deviceId: p.deviceId,
        deviceOwner: p.deviceOwner,
        bindingHostId: p.bindingHostId,
        createdAt: p.createdAt ? timestampDate(p.createdAt) : new Date(0),
        addresses: p.addresses.map((a) => ({
          subnetId: a.subnetId,
          segmentId: a.segmentId,
          ip: a.ipAddress,
          claimed: a.claimed,
        })),
      })),
    };
  }

  /** Every server not deleted, with whether its build runs (one statement: one snapshot). */
  private async readServers(): Promise<AuditServer[]> {
    const rows = await this.o.db.query<{
      id: string;
      vm_state: string;
      host: string;
      in_flight: boolean;
      updated_at: Date | string;
      port_ids: string[] | null;
    }>(
      `SELECT s.id::text AS id, s.vm_state, s.host, coalesce(b.phase <> 'done', false) AS in_flight, s.updated_at,
         (SELECT array_agg(a->>'portId') FROM jsonb_array_elements(s.addresses) a WHERE coalesce(a->>'portId', '') <> '') AS port_ids
       FROM servers s LEFT JOIN server_builds b ON b.server_id = s.id
       WHERE NOT s.deleted`,
    );
    return rows.map((r) => ({
      id: r.id,
      vmState: r.vm_state,
      host: r.host,
      inFlight: r.in_flight,
      updatedAt: new Date(r.updated_at),
      portIds: [...new Set(r.port_ids ?? [])],
    }));
  }

  /** The gone servers the compute ports name, with the ports their builds created. */
  private async readEnded(servers: AuditServer[], ports: AuditPort[]): Promise<Map<string, EndedServer>> {
    const live = new Set(servers.map((s) => s.id));
    const uuid = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
    const ids = [
      ...new Set(ports.filter((p) => isComputePort(p) && !live.has(p.deviceId)).map((p) => p.deviceId)),
    ].filter((id) => uuid.test(id));
    const ended = new Map<string, EndedServer>();
    if (!ids.length) return ended;
    const rows = await this.o.db.query<{ id: string; created: string[] | null }>(
      `SELECT s.id::text AS id,
         (SELECT array_agg(p->>'portId') FROM jsonb_array_elements(coalesce(b.ports, '[]'::jsonb)) p
           WHERE (p->>'created')::boolean AND coalesce(p->>'portId', '') <> '') AS created
       FROM servers s LEFT JOIN server_builds b ON b.server_id = s.id
       WHERE s.id = ANY($1::uuid[]) AND s.deleted`,
      [ids],
    );
    for (const r of rows) ended.set(r.id, { createdPortIds: r.created ?? [] });
    return ended;
  }

  private async repair(f: Finding): Promise<RepairRecord> {
    const r = f.repair!;
    const record: RepairRecord = { kind: f.kind, subject: f.subject, action: r.action, ok: true, error: "" };
    try {
      switch (r.action) {
        case "delete_allocations":
          await this.o.placement().deleteAllocations({ consumerUuid: r.consumerUuid });
          break;
        case "heal_allocations":
          for (const h of r.heals) {
            await this.o.placement().putAllocations({
              consumerUuid: h.consumerUuid,
              projectId: h.projectId,
              userId: h.userId,
              consumerGeneration: BigInt(h.generation),
              allocations: h.allocations.map((a) => ({
                providerUuid: a.providerUuid,
                resources: Object.fromEntries(Object.entries(a.resources).map(([rc, n]) => [rc, BigInt(n)])),
              })),
            });
          }
          break;
        case "delete_port":
          await this.networkOrFail().deletePort({ id: r.portId });
          break;
        case "release_port":
          await this.networkOrFail().unbindPort({ portId: r.portId, clearDevice: true });
          break;
      }
    } catch (err) {
      // Already gone: what the repair wanted holds.
      if (!isStratusError(err, "not_found")) {
        record.ok = false;
        record.error = err instanceof Error ? err.message : String(err);
      }
    }
    this.o.logger[record.ok ? "info" : "warn"](
      { audit: "repair", ...record, detail: f.detail, why: f.fix },
      `audit repair: ${r.action} ${f.subject} (${f.kind})${record.ok ? "" : ` failed: ${record.error}`}`,
    );
    return record;
  }

  private networkOrFail(): Client<typeof NetworkService> {
    const n = this.o.network();
    if (!n) throw new Error("no NETWORK_URL configured");
    return n;
  }
}
