// The two paths of CreatePort (with or without a host to bind to at once) and of a deferred
// port's first bind, over the same cases: the statements that serve many calls at once
// (port-statements.ts), the calls they leave then served by the transaction as PortService does,
// and the transaction alone, serving every call (ports.ts, binding.ts). Each case runs on each
// path in a transaction that is rolled back afterwards, from the same state; which calls the
// statements served, what each path answers (the port, or a refusal) and what it wrote (ports,
// ip_allocations, the free addresses, the events) must be the same: a call a statement left
// must have written nothing. A rule that drifts in one path (who sees a network or
// a port, which network is routed, the order addresses are taken in, the segment a host gets)
// makes a case differ. On PGlite, and on PostgreSQL when one answers.
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { PortChange } from "@stratus/contracts/events/v1";
import {
  CreateNetworkRequestSchema,
  CreatePortRequestSchema,
  CreateSubnetRequestSchema,
  IpAllocation,
} from "@stratus/contracts/network/v1";
import { type Database, type Queryable, StratusError } from "@stratus/runtime";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { bindPort, createAndBindPort } from "./binding.js";
import { type Caller, Outbox, type Tx } from "./context.js";
import { reportHostPhysicalNetworks } from "./hosts.js";
import type { PortRec } from "./model.js";
import { createNetwork } from "./networks.js";
import { createdBoundPortOfRow, createdPortOfRow, portWithHeldAddress } from "./port-events.js";
import {
  bindDeferredPorts,
  boundEligible,
  createBoundPorts,
  createDeferredPorts,
  createImmediatePorts,
  deferredEligible,
  immediateEligible,
} from "./port-statements.js";
import { createPort } from "./ports.js";
import { createSubnet } from "./subnets.js";
import { openTestDatabase, testBackends } from "./test-database.js";

const admin: Caller = { projectId: "", isAdmin: true };
const user = (projectId: string): Caller => ({ projectId, isAdmin: false });
const ASKED_MAC = "fa:16:3e:aa:bb:01";
const TAKEN_MAC = "fa:16:3e:aa:bb:02";

type CreateInit = MessageInitShape<typeof CreatePortRequestSchema>;
type Expected = "made" | StratusError["kind"];

/**
 * One call of a case: who asks what, and what both paths must come to. A call expected made is
 * made by a statement, unless `left` (a statement leaves it, and the transaction makes it); a
 * refused call is left by the statements.
 */
interface Call {
  caller: Caller;
  expect: Expected;
  left?: true;
  create?: CreateInit & { network: string; name: string };
  bind?: { port: string; host: string };
}

/** A call's answer: the port made or bound (normalised), or the refusal's kind. */
type Answer = { port: Record<string, unknown> } | { refused: string };

/** What a path answered each call, and whether a statement served it (else the transaction did). */
interface Served {
  answers: (PortRec | StratusError)[];
  served: boolean[];
}

/** Thrown to roll a case's transaction back once its outcome is read. */
class Outcome extends Error {
  constructor(readonly value: { answers: Answer[]; served: boolean[]; state: unknown; events: unknown[] }) {
    super("rolled back");
  }
}

describe.each(await testBackends())("the statements and the transaction on %s", (backend, available) => {
  let db: Database;
  let close: (() => Promise<void>) | undefined;
  /** Names of the setup's networks, subnets, segments and ports, by id; ids of networks by name. */
  const label = new Map<string, string>();
  const networks = new Map<string, string>();
  const ports = new Map<string, string>();

  const tx = <T>(fn: (t: Tx) => Promise<T>) =>
    db.transaction((q) => fn({ q, out: new Outbox(), caller: admin }));

  async function network(name: string, init: MessageInitShape<typeof CreateNetworkRequestSchema>) {
    const net = await tx((t) =>
      createNetwork(t, create(CreateNetworkRequestSchema, { name, projectId: "p1", ...init })),
    );
    label.set(net.id, name);
    networks.set(name, net.id);
    for (const s of net.segments ?? []) label.set(s.id!, `${name}/${s.name}`);
    return net;
  }

  async function subnet(
    networkName: string,
    cidr: string,
    opts: { segment?: string; pool?: [string, string] } = {},
  ) {
    const net = networks.get(networkName)!;
    const segmentId = opts.segment
      ? [...label].find(([, l]) => l === `${networkName}/${opts.segment}`)![0]
      : "";
    const sub = await tx((t) =>
      createSubnet(
        t,
        create(CreateSubnetRequestSchema, {
          networkId: net,
          segmentId,
          cidr,
          allocationPools: opts.pool ? [{ start: opts.pool[0], end: opts.pool[1] }] : [],
        }),
      ),
    );
    label.set(sub.id, cidr);
  }

  async function port(networkName: string, name: string, init: CreateInit = {}) {
    const made = await tx((t) =>
      createPort(
        t,
        create(CreatePortRequestSchema, {
          networkId: networks.get(networkName)!,
          projectId: "p1",
          name,
          ...init,
        }),
      ),
    );
    ports.set(name, made.id);
    label.set(made.id, name);
  }

  beforeAll(async () => {
    if (!available) return;
    ({ db, close } = await openTestDatabase(backend, "stratus_test_port_paths"));
    for (const [host, physnets] of [
      ["rack1-a", ["physnet-rack1"]],
      ["rack1-b", ["physnet-rack1"]],
      ["rack2-a", ["physnet-rack2"]],
      ["both-racks", ["physnet-rack1", "physnet-rack2"]],
      ["rack3-a", ["physnet-rack3"]],
      ["rack3-and-1", ["physnet-rack3", "physnet-rack1"]],
      ["lonely", []],
    ] as const) {
      await tx((t) =>
        reportHostPhysicalNetworks(t, { host, physicalNetworks: [...physnets], computeNodeUuid: "" }),
      );
    }
    await network("private", {});
    await subnet("private", "10.40.0.0/29");
    await network("shared", { shared: true });
    await subnet("shared", "10.41.0.0/29");
    await network("external", { routerExternal: true });
    await subnet("external", "10.42.0.0/29");
    await network("two-subnets", {});
    await subnet("two-subnets", "10.43.0.0/29", { pool: ["10.43.0.5", "10.43.0.6"] });
    await subnet("two-subnets", "10.43.1.0/29");
    await network("full", {});
    await subnet("full", "10.44.0.0/29", { pool: ["10.44.0.2", "10.44.0.2"] });
    await port("full", "holder");
    await port("private", "mac-holder", { macAddress: TAKEN_MAC });
    // Segments rack3 (first, without a subnet), rack1 and rack2.
    for (const [name, shared, base] of [
      ["routed", true, 50],
      ["routed-private", false, 60],
    ] as const) {
      await network(name, {
        shared,
        segments: [3, 1, 2].map((rack) => ({
          name: `rack${rack}`,
          networkType: "vlan",
          physicalNetwork: `physnet-rack${rack}`,
          segmentationId: base + rack,
        })),
      });
      await subnet(name, `10.${base}.1.0/29`, { segment: "rack1" });
      await subnet(name, `10.${base}.2.0/28`, { segment: "rack2" });
    }
    // Deferred ports to bind: made, never bound (each case's binds are rolled back).
    for (let i = 0; i < 8; i++) await port("routed", `d${i}`);
    await port("routed", "routed-mac-holder", { macAddress: TAKEN_MAC });
  });
  afterAll(async () => {
    await close?.();
  });

  /** Ids of the setup and of the case's ports as names; volatile columns dropped. */
  function normalise(value: unknown, names: Map<string, string>): unknown {
    if (typeof value === "string") return names.get(value) ?? label.get(value) ?? value;
    if (Array.isArray(value)) return value.map((v) => normalise(v, names));
    if (value instanceof Date || value === null || typeof value !== "object") return value;
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) {
      if (["$typeName", "id", "createdAt", "updatedAt", "created_at", "updated_at"].includes(k)) continue;
      const drawn = (k === "macAddress" || k === "mac_address") && v !== ASKED_MAC && v !== TAKEN_MAC;
      out[k] = drawn ? "(drawn)" : normalise(v, names);
    }
    return out;
  }

  /** The rows both paths may write: ports, addresses held, addresses free. */
  async function state(q: Queryable, names: Map<string, string>) {
    const portRows = await q.query("SELECT * FROM ports ORDER BY name");
    const held = await q.query(
      "SELECT a.subnet_id, a.ip::text AS ip, p.name FROM ip_allocations a JOIN ports p ON p.id = a.port_id ORDER BY p.name, a.ip",
    );
    const free = await q.query("SELECT subnet_id, ip::text AS ip FROM ip_free ORDER BY subnet_id, ip");
    return normalise({ portRows, held, free: free.filter((f) => label.has(String(f.subnet_id))) }, names);
  }

  const createRequest = (c: NonNullable<Call["create"]>) => {
    const { network: net, ...init } = c;
    return create(CreatePortRequestSchema, { networkId: networks.get(net) ?? net, ...init });
  };
  const bindRequest = (b: NonNullable<Call["bind"]>) => ({
    portId: ports.get(b.port)!,
    host: b.host,
    bindingProfile: {},
  });

  /** A call on the transactional path, in a savepoint (a refusal undoes only its call). */
  async function viaTransactionAlone(q: Queryable, c: Call, out: Outbox): Promise<PortRec | StratusError> {
    const t: Tx = { q, out: new Outbox(), caller: c.caller };
    await q.query("SAVEPOINT call");
    try {
      const port = c.create
        ? (await createAndBindPort(t, createRequest(c.create))).port
        : (await bindPort(t, bindRequest(c.bind!))).port;
      out.events.push(...t.out.events);
      await q.query("RELEASE SAVEPOINT call");
      return port;
    } catch (err) {
      if (!(err instanceof StratusError)) throw err;
      await q.query("ROLLBACK TO SAVEPOINT call");
      return err;
    }
  }

  /**
   * The statements' outcome: the calls' requests in one statement per kind (as the calls of one
   * turn), a creation tried by the immediate statement, then the deferred one, then the bound one;
   * then, in order, the calls they left on the transactional path (as PortService does).
   */
  async function viaStatements(q: Queryable, calls: Call[], out: Outbox): Promise<Served> {
    const made: (PortRec | null)[] = calls.map(() => null);
    const creations = calls.flatMap((c, i) =>
      c.create ? [{ i, req: createRequest(c.create), caller: c.caller }] : [],
    );
    for (const [eligible, statement, portOfRow] of [
      [immediateEligible, createImmediatePorts, createdPortOfRow],
      [deferredEligible, createDeferredPorts, createdPortOfRow],
      [boundEligible, createBoundPorts, createdBoundPortOfRow],
    ] as const) {
      const todo = creations.filter((c) => !made[c.i] && eligible(c.req, c.caller));
      const rows = await statement(q, todo);
      for (const [j, row] of rows.entries()) if (row) made[todo[j]!.i] = portOfRow(row, out);
    }
    const binds = calls.flatMap((c, i) =>
      c.bind ? [{ i, req: bindRequest(c.bind), caller: c.caller }] : [],
    );
    const rows = await bindDeferredPorts(q, binds);
    for (const [j, row] of rows.entries())
      if (row) made[binds[j]!.i] = portWithHeldAddress(row, out, PortChange.BOUND).port;
    const served = made.map((m) => m !== null);
    const answers: (PortRec | StratusError)[] = [];
    for (const [i, c] of calls.entries()) answers.push(made[i] ?? (await viaTransactionAlone(q, c, out)));
    return { answers, served };
  }

  /** The transaction's outcome: each call on its own, in order. */
  async function viaTransaction(q: Queryable, calls: Call[], out: Outbox): Promise<Served> {
    const answers: (PortRec | StratusError)[] = [];
    for (const c of calls) answers.push(await viaTransactionAlone(q, c, out));
    return { answers, served: calls.map(() => false) };
  }

  /** What a path came to, from the setup's state, with everything it wrote rolled back after. */
  async function outcome(path: (q: Queryable, out: Outbox) => Promise<Served>) {
    try {
      await db.transaction(async (q) => {
        const out = new Outbox();
        const { answers: got, served } = await path(q, out);
        const names = new Map(
          got.flatMap((p) => (p instanceof StratusError ? [] : [[p.id, p.name!] as const])),
        );
        const answers = got.map(
          (p): Answer =>
            p instanceof StratusError
              ? { refused: p.kind }
              : { port: normalise(p, names) as Record<string, unknown> },
        );
        throw new Outcome({
          answers,
          served,
          state: await state(q, names),
          events: normalise(
            out.events.map((e) => [e.subject, e.value]),
            names,
          ) as unknown[],
        });
      });
    } catch (err) {
      if (err instanceof Outcome) return err.value;
      throw err;
    }
    throw new Error("the case's transaction was not rolled back");
  }

  const p1 = user("p1");
  const p2 = user("p2");
  /** A port of project p1 made bound to `host` (an admin's request). */
  const bound = (network: string, name: string, host: string) => ({
    network,
    name,
    projectId: "p1",
    bindingHostId: host,
  });
  const cases: [string, Call[]][] = [
    [
      "its project's user on its private network",
      [{ caller: p1, expect: "made", create: { network: "private", name: "a" } }],
    ],
    [
      "another project's user on a private network",
      [{ caller: p2, expect: "not_found", create: { network: "private", name: "a" } }],
    ],
    [
      "another project's user on a shared network",
      [{ caller: p2, expect: "made", create: { network: "shared", name: "a" } }],
    ],
    [
      "another project's user on an external network: visible, not usable",
      [{ caller: p2, expect: "forbidden", create: { network: "external", name: "a" } }],
    ],
    [
      "an admin on a project's private network",
      [{ caller: admin, expect: "made", create: { network: "private", projectId: "p1", name: "a" } }],
    ],
    [
      "an admin making another project's port",
      [{ caller: admin, expect: "made", create: { network: "private", projectId: "p2", name: "a" } }],
    ],
    [
      "a user naming another project",
      [{ caller: p2, expect: "forbidden", create: { network: "shared", projectId: "p1", name: "a" } }],
    ],
    [
      "a network that does not exist",
      [{ caller: admin, expect: "not_found", create: { network: crypto.randomUUID(), name: "a" } }],
    ],
    ["an exhausted subnet", [{ caller: p1, expect: "ip_exhausted", create: { network: "full", name: "a" } }]],
    [
      "several ports on a network of two subnets: the first's addresses, then the second's",
      ["a", "b", "c"].map(
        (name): Call => ({ caller: p1, expect: "made", create: { network: "two-subnets", name } }),
      ),
    ],
    [
      "several networks and callers at once, refusals among them",
      [
        { caller: p1, expect: "made", create: { network: "private", name: "a" } },
        { caller: p2, expect: "not_found", create: { network: "private", name: "b" } },
        { caller: p2, expect: "made", create: { network: "shared", name: "c" } },
        { caller: p1, expect: "made", create: { network: "private", name: "d" } },
        { caller: admin, expect: "made", create: { network: "shared", projectId: "p3", name: "e" } },
      ],
    ],
    [
      "a MAC asked for",
      [{ caller: p1, expect: "made", create: { network: "private", macAddress: ASKED_MAC, name: "a" } }],
    ],
    [
      "a MAC asked for that is taken",
      [{ caller: p1, expect: "conflict", create: { network: "private", macAddress: TAKEN_MAC, name: "a" } }],
    ],
    [
      "routed networks: deferred, for whoever may use them",
      [
        { caller: p1, expect: "made", create: { network: "routed", name: "a" } },
        { caller: p2, expect: "made", create: { network: "routed", name: "b" } },
        { caller: p2, expect: "not_found", create: { network: "routed-private", name: "c" } },
        { caller: admin, expect: "made", create: { network: "routed-private", projectId: "p1", name: "d" } },
        {
          caller: p1,
          expect: "made",
          create: { network: "routed", ipAllocation: IpAllocation.DEFERRED, name: "e" },
        },
      ],
    ],
    [
      "an immediate port asked for on a routed network",
      [
        {
          caller: p1,
          expect: "invalid_input",
          create: { network: "routed", ipAllocation: IpAllocation.IMMEDIATE, name: "a" },
        },
      ],
    ],
    [
      "a deferred port's first bind onto its host's segment",
      [{ caller: admin, expect: "made", bind: { port: "d0", host: "rack2-a" } }],
    ],
    [
      "first binds onto two segments at once, each segment's addresses in order",
      [
        { caller: admin, expect: "made", bind: { port: "d0", host: "rack1-a" } },
        { caller: admin, expect: "made", bind: { port: "d1", host: "rack2-a" } },
        { caller: admin, expect: "made", bind: { port: "d2", host: "rack1-b" } },
      ],
    ],
    [
      "a host that reaches both segments: the first",
      [{ caller: admin, expect: "made", bind: { port: "d0", host: "both-racks" } }],
    ],
    [
      "a host that reaches no segment",
      [{ caller: admin, expect: "invalid_input", bind: { port: "d0", host: "lonely" } }],
    ],
    [
      "binds by users: another project's cannot see the port on a shared network, its own can",
      [
        { caller: p2, expect: "not_found", bind: { port: "d0", host: "rack1-a" } },
        { caller: p1, expect: "made", bind: { port: "d1", host: "rack1-a" } },
      ],
    ],
    [
      "more first binds than the segment has addresses",
      ["d0", "d1", "d2", "d3", "d4", "d5"].map(
        (port): Call => ({
          caller: admin,
          expect: port === "d5" ? "ip_exhausted" : "made",
          bind: { port, host: port === "d2" ? "rack1-b" : "rack1-a" },
        }),
      ),
    ],
    [
      "a port made bound to a host of the first segment with a subnet",
      [{ caller: admin, expect: "made", create: bound("routed", "a", "rack1-a") }],
    ],
    [
      "a port made bound to a host of the second",
      [{ caller: admin, expect: "made", create: bound("routed", "a", "rack2-a") }],
    ],
    [
      "a port made bound to a host that reaches no segment",
      [{ caller: admin, expect: "conflict", create: bound("routed", "a", "lonely") }],
    ],
    [
      "a port made bound to a host whose only segment has no subnet",
      [{ caller: admin, expect: "conflict", create: bound("routed", "a", "rack3-a") }],
    ],
    [
      "a port made bound to a host that reaches a segment without a subnet first: the next one",
      [{ caller: admin, expect: "made", create: bound("routed", "a", "rack3-and-1") }],
    ],
    [
      "ports made bound, more than their segment has addresses",
      ["a", "b", "c", "d", "e", "f"].map(
        (name): Call => ({
          caller: admin,
          expect: name === "f" ? "ip_exhausted" : "made",
          create: bound("routed", name, name === "c" ? "rack1-b" : "rack1-a"),
        }),
      ),
    ],
    [
      "ports made bound in one batch, on two segments, each segment's addresses in order",
      [
        { caller: admin, expect: "made", create: bound("routed", "a", "rack1-a") },
        { caller: admin, expect: "made", create: bound("routed", "b", "rack2-a") },
        { caller: admin, expect: "made", create: bound("routed", "c", "rack1-b") },
        { caller: admin, expect: "made", create: bound("routed-private", "d", "both-racks") },
      ],
    ],
    [
      "a port made bound by a user: only an admin may bind",
      [
        { caller: p1, expect: "forbidden", create: { ...bound("routed", "a", "rack1-a"), projectId: "" } },
        {
          caller: p1,
          expect: "forbidden",
          create: { network: "routed", name: "b", bindingProfile: { a: "b" } },
        },
      ],
    ],
    [
      "a port made bound with a MAC asked for: free, or taken (nothing written, its address left)",
      [
        {
          caller: admin,
          expect: "made",
          create: { ...bound("routed", "a", "rack1-a"), macAddress: ASKED_MAC },
        },
        {
          caller: admin,
          expect: "conflict",
          create: { ...bound("routed", "b", "rack1-a"), macAddress: TAKEN_MAC },
        },
      ],
    ],
    [
      "a port made bound on a network that is not routed: left to the transaction",
      [{ caller: admin, expect: "made", left: true, create: bound("private", "a", "rack1-a") }],
    ],
    [
      "a port made bound with a binding profile",
      [
        {
          caller: admin,
          expect: "made",
          create: { ...bound("routed", "a", "rack2-a"), bindingProfile: { pci_slot: "0000:01:00.1" } },
        },
      ],
    ],
    [
      "a deferred port made, a port made bound and another's first bind in one turn, on one segment",
      [
        { caller: admin, expect: "made", create: { network: "routed", projectId: "p1", name: "a" } },
        { caller: admin, expect: "made", create: bound("routed", "b", "rack1-a") },
        { caller: admin, expect: "made", bind: { port: "d0", host: "rack1-b" } },
      ],
    ],
  ];

  it.skipIf(!available).each(cases)("%s", async (_, calls) => {
    const statements = await outcome((q, out) => viaStatements(q, calls, out));
    const transaction = await outcome((q, out) => viaTransaction(q, calls, out));
    // What each call came to, and which the statements served: the calls expected made, unless
    // left; the refusals are the transaction's. Then both paths alike.
    expect(transaction.answers.map((a) => ("port" in a ? "made" : a.refused))).toEqual(
      calls.map((c) => c.expect),
    );
    expect(statements.served).toEqual(calls.map((c) => c.expect === "made" && !c.left));
    expect(statements.answers).toEqual(transaction.answers);
    expect(statements.state).toEqual(transaction.state);
    expect(statements.events).toEqual(transaction.events);
  });
});
