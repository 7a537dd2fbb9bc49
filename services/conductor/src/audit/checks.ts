// The audit's checks (docs/audit.md), defined once: given what the three owners hold — servers and
// their builds (this conductor), consumers and their allocations (placement), ports and their
// addresses (network-adapter) — the orphans, mismatches and duplicates, each with what would fix
// it and, when it is safe, the repair `--fix` makes. Pure: the reads, the double read that keeps
// races out and the repairs are auditor.ts's.
//
// In-flight work is never a finding: a build that is not done (allocating, scheduling, binding,
// spawning, cleanup, deleting) legitimately holds ports and allocations before its server is
// ACTIVE, or after it was asked to go. Its server is live (not deleted) until the build is done,
// so whatever names it is left alone; and anything younger than the grace age is left alone too
// (what a write in progress elsewhere may not have recorded yet).

/** A server that is not deleted, with whether its build is still running. */
export interface AuditServer {
  id: string;
  /** building, active, error, ... (servers.vm_state) */
  vmState: string;
  host: string;
  /** Its build is not done: it may hold ports and allocations that do not match its state yet. */
  inFlight: boolean;
  /** When its row last changed. */
  updatedAt: Date;
  /** The ports its addresses name. */
  portIds: string[];
}

/** A server that is gone (deleted, or never a row here) that a port still names. */
export interface EndedServer {
  /** The ports its build created (deleted on repair; others are the user's: released). */
  createdPortIds: string[];
}

export interface AuditConsumer {
  uuid: string;
  projectId: string;
  userId: string;
  generation: number;
  updatedAt: Date;
  allocations: { providerUuid: string; resources: Record<string, number> }[];
}

export interface AuditAddress {
  subnetId: string;
  /** The segment when it is a placement provider, else empty. */
  segmentId: string;
  ip: string;
  /** Placement's usage of the segment counts it (the network's own ports' are reserved instead). */
  claimed: boolean;
}

export interface AuditPort {
  id: string;
  networkId: string;
  deviceId: string;
  deviceOwner: string;
  bindingHostId: string;
  createdAt: Date;
  addresses: AuditAddress[];
}

export interface AuditSnapshot {
  servers: AuditServer[];
  /** Keyed by server id: the gone servers a port names (absent: never known here). */
  ended: Map<string, EndedServer>;
  consumers: AuditConsumer[];
  ports: AuditPort[];
  /** The segments that are placement providers (their IPv4 usage is checked). */
  segmentIds: string[];
  now: Date;
  graceMs: number;
}

export type FindingKind =
  | "orphan_port"
  | "orphan_allocation"
  | "duplicate_address"
  | "segment_usage_mismatch"
  | "active_server_without_allocation"
  | "active_server_port_missing"
  | "port_binding_mismatch"
  | "server_stuck_in_build";

/** What `--fix` does for a finding (only findings whose repair is safe carry one). */
export type Repair =
  | { action: "delete_allocations"; consumerUuid: string }
  | { action: "heal_allocations"; heals: Heal[] }
  | { action: "delete_port"; portId: string }
  | { action: "release_port"; portId: string };

/** A server's allocations with its segment claims made what its ports hold (heal_allocations). */
export interface Heal {
  consumerUuid: string;
  projectId: string;
  userId: string;
  /** The generation the audit read: the put fails if the consumer changed since. */
  generation: number;
  allocations: AuditConsumer["allocations"];
}

export interface Finding {
  kind: FindingKind;
  /** The port, consumer, server, segment or network/address the finding is about. */
  subject: string;
  detail: string;
  /** What would fix it. */
  fix: string;
  repair?: Repair;
}

/** Resources placement counts addresses of a segment in. */
export const IPV4 = "IPV4_ADDRESS";

/** Ports a server owns: Nova's device_owner for instance ports. */
export function isComputePort(p: Pick<AuditPort, "deviceOwner" | "deviceId">): boolean {
  return p.deviceOwner.startsWith("compute:") && p.deviceId !== "";
}

export function audit(s: AuditSnapshot): Finding[] {
  const findings: Finding[] = [];
  const old = (at: Date) => s.now.getTime() - at.getTime() >= s.graceMs;
  const live = new Map(s.servers.map((v) => [v.id, v]));
  const settled = (id: string) => {
    const v = live.get(id);
    return v !== undefined && !v.inFlight && old(v.updatedAt);
  };
  const portsById = new Map(s.ports.map((p) => [p.id, p]));
  const consumersByUuid = new Map(s.consumers.map((c) => [c.uuid, c]));

  // Orphan ports: a server's port whose server is gone.
  const orphanPorts = new Set<string>();
  for (const p of s.ports) {
    if (!isComputePort(p) || live.has(p.deviceId) || !old(p.createdAt)) continue;
    orphanPorts.add(p.id);
    const ended = s.ended.get(p.deviceId);
    const ours = ended?.createdPortIds.includes(p.id) === true;
    const held = p.addresses.map((a) => a.ip).join(", ") || "no address";
    findings.push({
      kind: "orphan_port",
      subject: p.id,
      detail:
        `port ${p.id} on network ${p.networkId} (${held}${p.bindingHostId ? `, bound to ${p.bindingHostId}` : ""}) ` +
        `names server ${p.deviceId}, which ${ended ? "was deleted" : "does not exist"}`,
      fix: ours
        ? "delete the port (its server's build created it)"
        : "unbind the port and clear its device (it was not created for the server: the user keeps it)",
      repair: ours ? { action: "delete_port", portId: p.id } : { action: "release_port", portId: p.id },
    });
  }

  // Orphan allocations: a consumer that is no live server (placement audit --delete).
  const orphanConsumers = new Set<string>();
  for (const c of s.consumers) {
    if (live.has(c.uuid) || !old(c.updatedAt)) continue;
    orphanConsumers.add(c.uuid);
    findings.push({
      kind: "orphan_allocation",
      subject: c.uuid,
      detail: `consumer ${c.uuid} (project ${c.projectId}) holds ${describeAllocations(c)} but is no server`,
      fix: "delete the consumer's allocations",
      repair: { action: "delete_allocations", consumerUuid: c.uuid },
    });
  }

  // Duplicate addresses: one address of a network held by two ports.
  const holders = new Map<string, string[]>();
  for (const p of s.ports) {
    for (const a of p.addresses) {
      const key = `${p.networkId}/${a.ip}`;
      const list = holders.get(key) ?? [];
      if (!list.includes(p.id)) list.push(p.id);
      holders.set(key, list);
    }
  }
  for (const [key, ports] of holders) {
    if (ports.length < 2) continue;
    findings.push({
      kind: "duplicate_address",
      subject: key,
      detail: `address ${key.slice(key.indexOf("/") + 1)} of network ${key.slice(0, key.indexOf("/"))} is held by ports ${ports.sort().join(", ")}`,
      fix: "keep the address on the port its server's addresses name; give the other port another address (port update with fixed_ips)",
    });
  }

  // Segment usage: placement's IPv4 usage of each segment against the addresses held in it, both
  // without in-flight work, young entries and the orphans reported above (one finding per cause).
  // Where settled servers' claims differ from what their own ports hold, and that is the whole
  // difference, healing those servers' allocations is the repair (heal_allocations).
  const counted = (owner: string, at: Date) => old(at) && (!live.has(owner) || settled(owner));
  const segments = new Set(s.segmentIds);
  const usage = new Map(s.segmentIds.map((id) => [id, { used: 0, held: 0 }]));
  /** Per settled server: its claimed addresses per segment, from its own ports. */
  const heldBy = new Map<string, Map<string, number>>();
  for (const p of s.ports) {
    if (orphanPorts.has(p.id) || !counted(p.deviceId, p.createdAt)) continue;
    for (const a of p.addresses) {
      if (!a.claimed || !segments.has(a.segmentId)) continue;
      usage.get(a.segmentId)!.held++;
      if (isComputePort(p) && live.has(p.deviceId)) {
        const mine = heldBy.get(p.deviceId) ?? new Map<string, number>();
        mine.set(a.segmentId, (mine.get(a.segmentId) ?? 0) + 1);
        heldBy.set(p.deviceId, mine);
      }
    }
  }
  const heals = new Map<string, { heal: Heal; delta: number }[]>();
  for (const c of s.consumers) {
    if (orphanConsumers.has(c.uuid) || !counted(c.uuid, c.updatedAt)) continue;
    const claimed = new Map<string, number>();
    for (const a of c.allocations) {
      const n = a.resources[IPV4];
      if (!n || !segments.has(a.providerUuid)) continue;
      usage.get(a.providerUuid)!.used += n;
      claimed.set(a.providerUuid, n);
    }
    if (!live.has(c.uuid)) continue;
    const mine = heldBy.get(c.uuid) ?? new Map<string, number>();
    const differing = [...segments].filter((seg) => (claimed.get(seg) ?? 0) !== (mine.get(seg) ?? 0));
    if (!differing.length) continue;
    const heal: Heal = {
      consumerUuid: c.uuid,
      projectId: c.projectId,
      userId: c.userId,
      generation: c.generation,
      allocations: healed(c.allocations, segments, mine),
    };
    for (const seg of differing) {
      const list = heals.get(seg) ?? [];
      list.push({ heal, delta: (mine.get(seg) ?? 0) - (claimed.get(seg) ?? 0) });
      heals.set(seg, list);
    }
  }
  for (const [seg, { used, held }] of [...usage].sort(([a], [b]) => a.localeCompare(b))) {
    if (used === held) continue;
    const servers = heals.get(seg) ?? [];
    const explained = servers.reduce((n, h) => n + h.delta, 0) === held - used && servers.length > 0;
    const named = servers.map((h) => h.heal.consumerUuid).join(", ");
    findings.push({
      kind: "segment_usage_mismatch",
      subject: seg,
      detail:
        `placement's ${IPV4} usage of segment ${seg} is ${used}, addresses held in it: ${held}` +
        (servers.length ? `; servers whose claims differ from their ports' addresses: ${named}` : ""),
      fix: explained
        ? `heal the allocations of ${named}: one ${IPV4} on the segment per address their ports hold there`
        : "find the addresses held without a server's claim (or claims without an address) and release or claim them",
      ...(explained
        ? { repair: { action: "heal_allocations" as const, heals: servers.map((h) => h.heal) } }
        : {}),
    });
  }

  // Servers that are not what their state says.
  for (const v of s.servers) {
    if (v.inFlight || !old(v.updatedAt)) continue;
    if (v.vmState === "building") {
      findings.push({
        kind: "server_stuck_in_build",
        subject: v.id,
        detail: `server ${v.id} is BUILD with no build running`,
        fix: "reset the server to ERROR (it holds no build) and delete it, or rebuild it",
      });
      continue;
    }
    if (v.vmState !== "active") continue;
    if (!consumersByUuid.has(v.id)) {
      findings.push({
        kind: "active_server_without_allocation",
        subject: v.id,
        detail: `server ${v.id} is ACTIVE on ${v.host} but placement holds no allocation for it`,
        fix: `heal its allocation: its flavor's resources on ${v.host} (and an address per routed port)`,
      });
    }
    const missing = v.portIds.filter((id) => !portsById.has(id));
    if (missing.length) {
      findings.push({
        kind: "active_server_port_missing",
        subject: v.id,
        detail: `server ${v.id} is ACTIVE with addresses on ports that do not exist: ${missing.join(", ")}`,
        fix: "detach the missing ports from the server (or recreate them) so its addresses match the network",
      });
    }
  }
  for (const p of s.ports) {
    if (!isComputePort(p) || !settled(p.deviceId) || !old(p.createdAt)) continue;
    const v = live.get(p.deviceId)!;
    if (v.vmState !== "active" || p.bindingHostId === v.host) continue;
    findings.push({
      kind: "port_binding_mismatch",
      subject: p.id,
      detail: `port ${p.id} of server ${v.id} is bound to "${p.bindingHostId}" but the server runs on ${v.host}`,
      fix: `bind the port to ${v.host}`,
    });
  }
  return findings;
}

/** A consumer's allocations with its IPv4 claim on each segment set to what it holds there. */
function healed(
  allocations: AuditConsumer["allocations"],
  segments: Set<string>,
  held: Map<string, number>,
): AuditConsumer["allocations"] {
  const out = allocations
    .map((a) => {
      if (!segments.has(a.providerUuid)) return a;
      const { [IPV4]: _, ...rest } = a.resources;
      const n = held.get(a.providerUuid) ?? 0;
      return { providerUuid: a.providerUuid, resources: n ? { ...rest, [IPV4]: n } : rest };
    })
    .filter((a) => Object.keys(a.resources).length > 0);
  for (const [seg, n] of held) {
    if (n && !out.some((a) => a.providerUuid === seg))
      out.push({ providerUuid: seg, resources: { [IPV4]: n } });
  }
  return out;
}

function describeAllocations(c: AuditConsumer): string {
  return c.allocations
    .map(
      (a) =>
        `${Object.entries(a.resources)
          .map(([rc, n]) => `${rc}=${n}`)
          .join(",")} on ${a.providerUuid}`,
    )
    .join("; ");
}

/** The findings present in both: what two reads around the conductor's read agree on (auditor.ts). */
export function confirmed(first: Finding[], second: Finding[]): Finding[] {
  const seen = new Set(first.map((f) => `${f.kind} ${f.subject}`));
  return second.filter((f) => seen.has(`${f.kind} ${f.subject}`));
}
