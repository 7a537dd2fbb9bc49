// The statement that makes CreatePort's common case (automatic address, network not routed)
// in-process, on PGlite and (when reachable) PostgreSQL: several requests per statement, each made
// or left untouched for the transaction, a MAC asked for that is taken leaving only its request
// unmade, and a drawn MAC that is taken drawn again, without losing an address. And the quota
// held over the statement that makes ports bound to their host.
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { PortChange } from "@stratus/contracts/events/v1";
import {
  CreateNetworkRequestSchema,
  CreatePortRequestSchema,
  CreateSubnetRequestSchema,
  UpdateQuotaRequestSchema,
} from "@stratus/contracts/network/v1";
import type { Database } from "@stratus/runtime";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Caller, Outbox, type Tx } from "./context.js";
import { reportHostPhysicalNetworks } from "./hosts.js";
import { createNetwork } from "./networks.js";
import { portWithHeldAddress } from "./port-events.js";
import {
  boundEligible,
  createBoundPorts,
  createImmediatePorts,
  immediateEligible,
} from "./port-statements.js";
import { updateQuota } from "./quotas.js";
import { createSubnet } from "./subnets.js";
import { openTestDatabase, testBackends } from "./test-database.js";

const admin: Caller = { projectId: "", isAdmin: true };

// `available` is false only for PostgreSQL when no server answers on a developer's machine: those
// cases skip, saying so — never in CI, where testBackends() throws instead (STRATUS_REQUIRE_POSTGRES=1).
describe.each(await testBackends())("the immediate creation statement on %s", (backend, available) => {
  let db: Database;
  let close: (() => Promise<void>) | undefined;
  const tx = <T>(fn: (t: Tx) => Promise<T>, caller = admin) =>
    db.transaction((q) => fn({ q, out: new Outbox(), caller }));
  const network = (req: MessageInitShape<typeof CreateNetworkRequestSchema>) =>
    tx((t) => createNetwork(t, create(CreateNetworkRequestSchema, { name: "n", projectId: "p1", ...req })));
  const subnet = (networkId: string, cidr: string, pool?: [string, string]) =>
    tx((t) =>
      createSubnet(
        t,
        create(CreateSubnetRequestSchema, {
          networkId,
          cidr,
          allocationPools: pool ? [{ start: pool[0], end: pool[1] }] : [],
        }),
      ),
    );
  const port = (networkId: string, init: MessageInitShape<typeof CreatePortRequestSchema> = {}) =>
    create(CreatePortRequestSchema, { networkId, ...init });
  const count = async (sql: string, params: unknown[]) =>
    Number((await db.query<{ n: string }>(sql, params))[0]!.n);

  beforeAll(async () => {
    if (!available) return;
    ({ db, close } = await openTestDatabase(backend, "stratus_test_port_statements"));
  });
  afterAll(async () => {
    await close?.();
  });

  it.skipIf(!available)(
    "makes several ports in one statement; a MAC asked for that is taken leaves only that request unmade",
    async () => {
      const net = await network({});
      const sub = await subnet(net.id, "10.20.0.0/24", ["10.20.0.10", "10.20.0.20"]);
      const [first] = await createImmediatePorts(db, [
        { req: port(net.id, { macAddress: "fa:16:3e:aa:00:01" }), caller: admin },
      ]);
      expect(first).toMatchObject({ held_subnet_id: sub.id, mac_address: "fa:16:3e:aa:00:01" });
      const free = await count("SELECT count(*) AS n FROM ip_free WHERE subnet_id = $1", [sub.id]);

      const rows = await createImmediatePorts(db, [
        { req: port(net.id, { name: "a" }), caller: admin },
        { req: port(net.id, { name: "dup", macAddress: "FA:16:3E:AA:00:01" }), caller: admin },
        { req: port(net.id, { name: "b" }), caller: admin },
      ]);
      expect(rows.map((r) => r?.name ?? null)).toEqual(["a", null, "b"]);
      const ips = rows.filter((r) => r).map((r) => Number(r!.held_ip));
      expect(new Set(ips).size).toBe(2);
      // Exactly the two made ports took an address; nothing was left half done.
      expect(await count("SELECT count(*) AS n FROM ip_free WHERE subnet_id = $1", [sub.id])).toBe(free - 2);
      expect(await count("SELECT count(*) AS n FROM ports WHERE network_id = $1", [net.id])).toBe(3);
      expect(await count("SELECT count(*) AS n FROM ip_allocations WHERE subnet_id = $1", [sub.id])).toBe(3);

      const out = new Outbox();
      const made = portWithHeldAddress(rows[0]!, out, PortChange.CREATED).port;
      expect(made.fixedIps).toEqual([{ subnetId: sub.id, ipAddress: expect.stringMatching(/^10\.20\.0\./) }]);
      expect(out.events.map((e) => e.subject)).toEqual(["stratus.ip.allocated", "stratus.port.created"]);
    },
  );

  it.skipIf(!available)(
    "draws again when the MAC it drew is already on the network, and keeps no address for the miss",
    async () => {
      const net = await network({});
      const sub = await subnet(net.id, "10.23.0.0/24", ["10.23.0.10", "10.23.0.20"]);
      // The same seed makes the second port's first draw the first port's MAC.
      const [a, b] = await db.transaction(async (q) => {
        await q.query("SELECT setseed(0.42)");
        const [first] = await createImmediatePorts(q, [{ req: port(net.id, { name: "a" }), caller: admin }]);
        await q.query("SELECT setseed(0.42)");
        const [second] = await createImmediatePorts(q, [{ req: port(net.id, { name: "b" }), caller: admin }]);
        return [first, second];
      });
      expect(a?.name).toBe("a");
      expect(b?.name).toBe("b");
      expect(b!.mac_address).not.toBe(a!.mac_address);
      expect(String(b!.mac_address)).toMatch(/^fa:16:3e(:[0-9a-f]{2}){3}$/);
      expect(await count("SELECT count(*) AS n FROM ip_free WHERE subnet_id = $1", [sub.id])).toBe(11 - 2);
      expect(await count("SELECT count(*) AS n FROM ip_allocations WHERE subnet_id = $1", [sub.id])).toBe(2);
    },
  );

  it.skipIf(!available)(
    "leaves to the full path what it may not make, and writes nothing for it",
    async () => {
      const own = await network({ projectId: "p-own" });
      await subnet(own.id, "10.21.0.0/24");
      const full = await network({});
      await subnet(full.id, "10.22.0.0/24", ["10.22.0.10", "10.22.0.10"]);
      const routed = await network({
        segments: [
          { name: "r1", networkType: "vlan", physicalNetwork: "phys-f1", segmentationId: 301 },
          { name: "r2", networkType: "vlan", physicalNetwork: "phys-f2", segmentationId: 302 },
        ],
      });
      const tenant: Caller = { projectId: "p-other", isAdmin: false };
      const portsBefore = await count("SELECT count(*) AS n FROM ports", []);
      const rows = await createImmediatePorts(db, [
        { req: port(own.id), caller: tenant }, // another project's network
        { req: port(crypto.randomUUID()), caller: admin }, // no such network
        { req: port(routed.id), caller: admin }, // routed: deferred
        { req: port(full.id), caller: admin }, // takes the only address
        { req: port(full.id), caller: admin }, // exhausted
        { req: port(own.id), caller: { projectId: "p-own", isAdmin: false } },
      ]);
      expect(rows.map((r) => (r ? String(r.network_id) : null))).toEqual([
        null,
        null,
        null,
        full.id,
        null,
        own.id,
      ]);
      expect(await count("SELECT count(*) AS n FROM ports", [])).toBe(portsBefore + 2);
      // What the full path must see: fixed IPs, other modes, bad MACs, acting for another project.
      expect(immediateEligible(port(own.id, { fixedIps: [{ ipAddress: "10.21.0.5" }] }), admin)).toBe(false);
      expect(immediateEligible(port(own.id, { ipAllocation: 2 }), admin)).toBe(false);
      expect(immediateEligible(port(own.id, { macAddress: "nonsense" }), admin)).toBe(false);
      expect(immediateEligible(port(own.id, { projectId: "p-own" }), tenant)).toBe(false);
      expect(immediateEligible(port(own.id), tenant)).toBe(true);
    },
  );

  it.skipIf(!available)(
    "makes ports bound to their host up to the project's quota, and leaves the rest unwritten",
    async () => {
      await tx((t) =>
        reportHostPhysicalNetworks(t, { host: "q-host", physicalNetworks: ["phys-q1"], computeNodeUuid: "" }),
      );
      const routed = await network({
        segments: [
          { name: "q1", networkType: "vlan", physicalNetwork: "phys-q1", segmentationId: 401 },
          { name: "q2", networkType: "vlan", physicalNetwork: "phys-q2", segmentationId: 402 },
        ],
      });
      await tx((t) =>
        createSubnet(
          t,
          create(CreateSubnetRequestSchema, {
            networkId: routed.id,
            segmentId: routed.segments![0]!.id!,
            cidr: "10.24.0.0/24",
          }),
        ),
      );
      await tx((t) => updateQuota(t, create(UpdateQuotaRequestSchema, { projectId: "p-q", port: 2 })));
      const request = () => ({
        req: port(routed.id, { projectId: "p-q", bindingHostId: "q-host" }),
        caller: admin,
      });
      expect(boundEligible(request().req, admin)).toBe(true);
      expect(boundEligible(request().req, { projectId: "p-q", isAdmin: false })).toBe(false);
      // Three in one statement would pass the limit: run again one by one, two are made.
      const rows = await createBoundPorts(db, [request(), request(), request()]);
      expect(rows.filter((r) => r).length).toBe(2);
      for (const row of rows.filter((r) => r)) {
        expect(row).toMatchObject({ binding_host_id: "q-host", binding_segment_id: routed.segments![0]!.id });
      }
      expect(await count("SELECT count(*) AS n FROM ports WHERE project_id = 'p-q'", [])).toBe(2);
      expect(
        await count(
          "SELECT count(*) AS n FROM ip_allocations a JOIN ports p ON p.id = a.port_id WHERE p.project_id = 'p-q'",
          [],
        ),
      ).toBe(2);
      expect(await createBoundPorts(db, [request()])).toEqual([null]);
    },
  );
});
