import { describe, expect, it } from "vitest";
import {
  type AuditConsumer,
  type AuditPort,
  type AuditServer,
  type AuditSnapshot,
  audit,
  confirmed,
} from "./checks.js";

const now = new Date("2026-01-01T12:00:00Z");
const longAgo = new Date("2026-01-01T11:00:00Z");
const justNow = new Date("2026-01-01T11:59:59Z");
const SEG = "seg-1";

function server(id: string, o: Partial<AuditServer> = {}): AuditServer {
  return {
    id,
    vmState: "active",
    host: "h1",
    inFlight: false,
    updatedAt: longAgo,
    portIds: [`p-${id}`],
    ...o,
  };
}
function consumer(uuid: string, o: Partial<AuditConsumer> = {}): AuditConsumer {
  return {
    uuid,
    projectId: "demo",
    userId: "u",
    generation: 1,
    updatedAt: longAgo,
    allocations: [
      { providerUuid: "h1", resources: { VCPU: 1 } },
      { providerUuid: SEG, resources: { IPV4_ADDRESS: 1 } },
    ],
    ...o,
  };
}
function port(id: string, deviceId: string, ip: string, o: Partial<AuditPort> = {}): AuditPort {
  return {
    id,
    networkId: "net",
    deviceId,
    deviceOwner: "compute:nova",
    bindingHostId: "h1",
    createdAt: longAgo,
    addresses: [{ subnetId: "sn", segmentId: SEG, ip, claimed: true }],
    ...o,
  };
}
/** Two healthy ACTIVE servers on a routed segment. */
function healthy(): AuditSnapshot {
  return {
    servers: [server("a"), server("b")],
    ended: new Map(),
    consumers: [consumer("a"), consumer("b")],
    ports: [port("p-a", "a", "10.0.0.2"), port("p-b", "b", "10.0.0.3")],
    segmentIds: [SEG],
    now,
    graceMs: 60_000,
  };
}
const kinds = (s: AuditSnapshot) => audit(s).map((f) => `${f.kind} ${f.subject}`);

describe("audit checks", () => {
  it("find nothing in a consistent snapshot", () => {
    expect(audit(healthy())).toEqual([]);
  });

  it("find a port whose server is gone: deleted when its build made it, released when the user's", () => {
    const s = healthy();
    s.ports.push(
      port("p-x", "x", "10.0.0.9", { addresses: [] }),
      port("p-y", "y", "10.0.0.8", { addresses: [] }),
    );
    s.ended.set("x", { createdPortIds: ["p-x"] });
    const found = audit(s);
    expect(found.map((f) => [f.kind, f.subject, f.repair])).toEqual([
      ["orphan_port", "p-x", { action: "delete_port", portId: "p-x" }],
      ["orphan_port", "p-y", { action: "release_port", portId: "p-y" }],
    ]);
  });

  it("find a consumer that is no server, and count neither its claim nor an orphan port's address twice", () => {
    const s = healthy();
    s.consumers.push(consumer("gone"));
    s.ports.push(port("p-gone", "gone", "10.0.0.7"));
    expect(kinds(s)).toEqual(["orphan_port p-gone", "orphan_allocation gone"]);
  });

  it("find an address held by two ports of one network, not the same address on two networks", () => {
    const s = healthy();
    s.ports[1]!.addresses.push({ subnetId: "sn2", segmentId: "", ip: "10.0.0.2", claimed: true });
    s.ports.push(port("p-o", "", "10.0.0.3", { networkId: "other", deviceOwner: "", addresses: [] }));
    s.ports[2]!.addresses.push({ subnetId: "sn9", segmentId: "", ip: "10.0.0.3", claimed: true });
    expect(kinds(s)).toEqual(["duplicate_address net/10.0.0.2"]);
  });

  it("find a segment whose usage differs from the addresses held in it; the network's own ports do not count", () => {
    const s = healthy();
    s.ports.push(
      port("p-dhcp", "dhcp", "10.0.0.4", {
        deviceOwner: "network:dhcp",
        addresses: [{ subnetId: "sn", segmentId: SEG, ip: "10.0.0.4", claimed: false }],
      }),
    );
    expect(audit(s)).toEqual([]);
    // A user's port holding an address with no server's claim: not a server's to heal.
    s.ports.push(port("p-user", "", "10.0.0.5", { deviceOwner: "" }));
    const [f] = audit(s);
    expect(f).toMatchObject({ kind: "segment_usage_mismatch", subject: SEG });
    expect(f!.detail).toContain("is 2, addresses held in it: 3");
    expect(f!.repair).toBeUndefined();
  });

  it("heal a server whose claim differs from what its ports hold, and a claim on an empty segment", () => {
    const s = healthy();
    s.segmentIds.push("seg-2");
    // b lost its claim; a claims an address on seg-2 too, where it holds none.
    s.consumers[1]!.allocations = [{ providerUuid: "h1", resources: { VCPU: 1 } }];
    s.consumers[0]!.allocations.push({ providerUuid: "seg-2", resources: { IPV4_ADDRESS: 1 } });
    const found = audit(s);
    expect(found.map((f) => `${f.kind} ${f.subject}`)).toEqual([
      `segment_usage_mismatch ${SEG}`,
      "segment_usage_mismatch seg-2",
    ]);
    expect(found[0]!.repair).toEqual({
      action: "heal_allocations",
      heals: [
        {
          consumerUuid: "b",
          projectId: "demo",
          userId: "u",
          generation: 1,
          allocations: [
            { providerUuid: "h1", resources: { VCPU: 1 } },
            { providerUuid: SEG, resources: { IPV4_ADDRESS: 1 } },
          ],
        },
      ],
    });
    expect(found[1]!.repair).toEqual({
      action: "heal_allocations",
      heals: [
        {
          consumerUuid: "a",
          projectId: "demo",
          userId: "u",
          generation: 1,
          allocations: [
            { providerUuid: "h1", resources: { VCPU: 1 } },
            { providerUuid: SEG, resources: { IPV4_ADDRESS: 1 } },
          ],
        },
      ],
    });
  });

  it("leave in-flight builds and young entries alone", () => {
    const s = healthy();
    // A build that claimed but holds no address yet; a server deleting, its claim already gone.
    s.servers.push(server("c", { vmState: "building", inFlight: true }), server("d", { inFlight: true }));
    s.consumers.push(consumer("c"));
    s.ports.push(port("p-c", "c", "", { addresses: [] }), port("p-d", "d", "10.0.0.5"));
    // A consumer and a port just written by someone the conductor has not heard of yet.
    s.consumers.push(consumer("new", { updatedAt: justNow }));
    s.ports.push(port("p-new", "new", "10.0.0.6", { createdAt: justNow }));
    // A server stuck in BUILD, but it only just changed.
    s.servers.push(server("e", { vmState: "building", updatedAt: justNow, portIds: [] }));
    expect(audit(s)).toEqual([]);
  });

  it("find servers that are not what their state says", () => {
    const s = healthy();
    s.servers.push(server("stuck", { vmState: "building", portIds: [] }));
    s.servers.push(server("bare", { portIds: ["p-missing"] }));
    s.ports[0]!.bindingHostId = "h2";
    expect(kinds(s).sort()).toEqual(
      [
        "server_stuck_in_build stuck",
        "active_server_without_allocation bare",
        "active_server_port_missing bare",
        "port_binding_mismatch p-a",
      ].sort(),
    );
  });

  it("confirm only what two reads agree on", () => {
    const a = { kind: "orphan_port" as const, subject: "p", detail: "", fix: "" };
    const b = { kind: "orphan_allocation" as const, subject: "c", detail: "", fix: "" };
    expect(confirmed([a, b], [b])).toEqual([b]);
    expect(confirmed([a], [b])).toEqual([]);
  });
});
