// The mesh on a 3-node NATS cluster: streams are made with three replicas and a service start
// never lowers that; with one node killed during a burst of builds, every build still ends ACTIVE
// (clients fail over to the other nodes, the streams keep their quorum) and the node rejoins.
import { NetworkService } from "@stratus/contracts/network/v1";
import {
  ensureStreams,
  instancesOf,
  SERVICE_ROLES,
  Streams,
  serviceClient,
  streamsOwnedBy,
} from "@stratus/runtime";
import type { Mesh, TestNatsCluster } from "@stratus/runtime/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createRoutedNetwork, rest, startApiMesh, waitServer } from "../api/helpers.js";

let mesh: Mesh;
let cluster: TestNatsCluster;

beforeAll(async () => {
  ({ mesh } = await startApiMesh({ natsCluster: 3 }));
  cluster = mesh.nats as TestNatsCluster;
}, 240_000);
afterAll(async () => {
  await mesh?.close();
});

describe("a 3-node NATS cluster", () => {
  it("holds every stream in three replicas, and a start asking for one keeps three", async () => {
    const owners = SERVICE_ROLES.map((role) => ({ role, streams: streamsOwnedBy(role) })).filter(
      (o) => o.streams.length > 0,
    );
    // Every stream but the one earlier versions made.
    expect(owners.flatMap((o) => o.streams).length).toBe(Object.values(Streams).length - 1);
    for (const { role, streams } of owners) {
      // The owner starting again with the default (1) re-applies its streams: they keep three.
      const nc = await cluster.connect(role);
      try {
        const jsm = await nc.jetstreamManager();
        const names = streams.flatMap(instancesOf).map((s) => s.name);
        for (const s of names) expect((await jsm.streams.info(s)).config.num_replicas, s).toBe(3);
        await ensureStreams(nc, streams, { replicas: 1 });
        for (const s of names) expect((await jsm.streams.info(s)).config.num_replicas, s).toBe(3);
      } finally {
        await nc.close();
      }
    }
  });

  it("loses no build when a node is killed during a burst", async () => {
    const net = serviceClient(NetworkService, mesh.url("network-adapter"));
    const network = await createRoutedNetwork(net, "p1", "cluster-net");
    // A client as the API asks: a 503 (a peer failing over, e.g. the api's revocation feed while
    // its NATS connection moves to another node: it fails closed) is sent again, with the same
    // Idempotency-Key, after its Retry-After.
    const create = async (i: number) => {
      for (let attempt = 0; ; attempt++) {
        const r = await rest(mesh.apiUrl, "POST", "/v2.1/servers", {
          version: "2.37",
          headers: { "idempotency-key": `cluster-${i}` },
          body: {
            server: {
              name: `c${i}`,
              imageRef: "a9e6c1b4-5f0d-4c36-8a57-2f4f6b1c0c01",
              flavorRef: "1",
              networks: [{ uuid: network.id }],
            },
          },
        });
        if (r.status !== 503 || attempt >= 30) return r;
        await new Promise((resolve) => setTimeout(resolve, 1000));
      }
    };
    // The project's quota is 10 instances: five accepted before the kill, five after, all in flight.
    const first = await Promise.all([0, 1, 2, 3, 4].map(create));
    await cluster.killNode(1);
    const second = await Promise.all([5, 6, 7, 8, 9].map(create));
    const ids: string[] = [];
    for (const r of [...first, ...second]) {
      expect(r.status, JSON.stringify(r.body)).toBe(202);
      ids.push(r.body.server.id);
    }
    const settled = await Promise.all(ids.map((id) => waitServer(mesh.apiUrl, id, undefined, 120_000)));
    expect(settled.map((s) => s.status)).toEqual(ids.map(() => "ACTIVE"));
    await cluster.startNode(1);
  });
});
