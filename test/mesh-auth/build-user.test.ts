// A build acts as its user (issue 21.3): the api accepts a server on a network shared at that
// moment; the network stops being shared before the conductor allocates the server's port; the
// network-adapter, checking that user's visibility itself, refuses it, and the build ends ERROR with
// the refusal as its fault. The conductor reaches the network-adapter through a gate the test
// opens only once the network is no longer shared, so the order is certain.
import net from "node:net";
import { NetworkService } from "@stratus/contracts/network/v1";
import { serviceClient } from "@stratus/runtime";
import { freePort, type Mesh, startMesh } from "@stratus/runtime/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { asAdmin, rest, until, useMesh } from "../api/helpers.js";

/** A TCP gate: connections wait, unforwarded, until it opens; then each goes to the target port. */
async function gate() {
  const port = await freePort();
  let target = 0;
  let open = false;
  const waiting: net.Socket[] = [];
  const sockets = new Set<net.Socket>();
  const track = (s: net.Socket) => {
    sockets.add(s);
    s.once("close", () => sockets.delete(s));
  };
  const forward = (s: net.Socket) => {
    const upstream = net.connect(target, "127.0.0.1");
    track(upstream);
    s.pipe(upstream).pipe(s);
    s.on("error", () => upstream.destroy());
    upstream.on("error", () => s.destroy());
  };
  const server = net.createServer((s) => {
    track(s);
    if (open) forward(s);
    else {
      s.pause();
      waiting.push(s);
    }
  });
  await new Promise<void>((resolve) => server.listen(port, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${port}`,
    waiting: () => waiting.length,
    to(port: number) {
      target = port;
    },
    open() {
      open = true;
      for (const s of waiting.splice(0)) {
        forward(s);
        s.resume();
      }
    },
    /** Stops listening and cuts every connection through it (a peer's pooled session included). */
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const s of sockets) s.destroy();
      }),
  };
}

let mesh: Mesh;
let conductorToNetwork: Awaited<ReturnType<typeof gate>>;
beforeAll(async () => {
  conductorToNetwork = await gate();
  mesh = await startMesh({
    services: ["scheduler", "network-adapter", "conductor", "api"],
    env: { LOG_LEVEL: "warn" },
    serviceEnv: { conductor: { NETWORK_URL: conductorToNetwork.url } },
  });
  conductorToNetwork.to(Number(new URL(mesh.url("network-adapter")).port));
  useMesh(mesh);
}, 240_000);
afterAll(async () => {
  conductorToNetwork?.open();
  await mesh?.close();
  await conductorToNetwork?.close();
});

describe("a build's port", () => {
  it("is refused by the network-adapter when the network stopped being shared after the api accepted", async () => {
    const adapter = serviceClient(NetworkService, mesh.url("network-adapter"));
    const shared = await asAdmin(async () => {
      const { network } = await adapter.createNetwork({
        name: "once-shared",
        projectId: "owner",
        shared: true,
      });
      await adapter.createSubnet({ networkId: network!.id, projectId: "owner", cidr: "10.91.0.0/24" });
      return network!;
    });

    const accepted = await rest(mesh.apiUrl, "POST", "/v2.1/servers", {
      token: "alice:p1",
      version: "2.37",
      body: {
        server: {
          name: "late",
          flavorRef: "1",
          imageRef: "a9e6c1b4-5f0d-4c36-8a57-2f4f6b1c0c01",
          networks: [{ uuid: shared.id }],
        },
      },
    });
    expect(accepted.status).toBe(202);
    // The build is at its first step, waiting for the network-adapter behind the gate.
    await until("the conductor's call at the gate", async () => conductorToNetwork.waiting() > 0);
    await asAdmin(() => adapter.updateNetwork({ id: shared.id, shared: false }));
    conductorToNetwork.open();

    const id = accepted.body.server.id as string;
    const server = await until("the build settled", async () => {
      const r = await rest(mesh.apiUrl, "GET", `/v2.1/servers/${id}`, { token: "alice:p1", version: "2.37" });
      return r.body.server.status !== "BUILD" ? r.body.server : undefined;
    });
    expect(server.status).toBe("ERROR");
    expect(server.fault.message).toContain(`Network ${shared.id} could not be found`);
    const ports = await asAdmin(() => adapter.listPorts({ deviceId: id }));
    expect(ports.ports).toEqual([]);
  });
});
