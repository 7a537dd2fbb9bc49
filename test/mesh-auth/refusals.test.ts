// No unauthenticated path inside the mesh (issue 21.3), against real processes on a real NATS with
// authentication: every service refuses a call without a credential or with a forged one (another
// key, a changed payload, expired) on every protocol; identity headers are honoured only from a
// service allowed to act for users; a compute agent's own credential cannot do what it has no
// business doing; the attacks of the issue are refused; a revoked token is refused everywhere
// within a second.
import { ConductorService, NetworkMode } from "@stratus/contracts/compute/v1";
import { ComputeAgentService } from "@stratus/contracts/computeagent/v1";
import { Health } from "@stratus/contracts/grpc/health/v1";
import { IdentityService } from "@stratus/contracts/identity/v1";
import { NetworkService } from "@stratus/contracts/network/v1";
import { PlacementService } from "@stratus/contracts/scheduler/v1/placement";
import { type Mesh, type ServiceName, startMesh, type UserToken } from "@stratus/runtime/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  bearer,
  expiredToken,
  outcome,
  PROTOCOLS,
  plainClient,
  signedWithAnotherKey,
  tampered,
} from "./helpers.js";

type Headers = Record<string, string>;

/** A read each service answers an admin (its method's policy lets the admin role through). */
const READS: [
  Exclude<ServiceName, "api">,
  (url: string, protocol: number, headers: Headers) => Promise<unknown>,
][] = [
  ["conductor", (url, p, headers) => client(ConductorService, url, p).listFlavors({}, { headers })],
  ["scheduler", (url, p, headers) => client(PlacementService, url, p).listResourceProviders({}, { headers })],
  ["network-adapter", (url, p, headers) => client(NetworkService, url, p).listNetworks({}, { headers })],
  ["compute-agent", (url, p, headers) => client(ComputeAgentService, url, p).listHosts({}, { headers })],
  ["identity", (url, p, headers) => client(IdentityService, url, p).listSigningKeys({}, { headers })],
];

function client<S extends Parameters<typeof plainClient>[0]>(service: S, url: string, protocol = 0) {
  return plainClient(service, PROTOCOLS[protocol]![1](url));
}

let mesh: Mesh;
let admin: UserToken;
beforeAll(async () => {
  mesh = await startMesh({
    env: { LOG_LEVEL: "warn" },
    serviceEnv: { "compute-agent": { COMPUTE_HOSTS: "auth-1" } },
  });
  admin = await mesh.token({ user: "auth-admin", project: "auth-admin", roles: ["admin"] });
}, 240_000);
afterAll(async () => {
  await mesh?.close();
});

describe("a call's credential, on every service and protocol", () => {
  const forged: Record<string, string> = {};
  beforeAll(async () => {
    forged["signed with another key"] = await signedWithAnotherKey(admin.token);
    forged["changed after signing"] = tampered(
      (await mesh.token({ user: "auth-member", project: "auth-a", roles: ["member"] })).token,
    );
    forged.expired = await expiredToken(mesh, admin, async (token) => {
      expect(await outcome(READS[0]![1](mesh.url("conductor"), 0, bearer(token)))).toBe("ok");
    });
  }, 60_000);

  for (const [service, read] of READS) {
    it.each(PROTOCOLS.map(([name], i) => [name, i] as const))(
      `${service}: a valid token is answered; none, a forged or an expired one is Unauthenticated (%s)`,
      async (_, protocol) => {
        const url = mesh.url(service);
        expect(await outcome(read(url, protocol, bearer(admin.token)))).toBe("ok");
        const refusals: Record<string, string> = {
          none: await outcome(read(url, protocol, {})),
          "not a bearer": await outcome(read(url, protocol, { authorization: admin.token })),
          // The identity headers of the old mesh, without a token: not a credential.
          "identity headers only": await outcome(
            read(url, protocol, {
              "x-stratus-user-id": "admin",
              "x-stratus-roles": "admin",
              "x-stratus-admin": "1",
            }),
          ),
        };
        for (const [how, token] of Object.entries(forged)) {
          refusals[how] = await outcome(read(url, protocol, bearer(token)));
        }
        expect(refusals).toEqual(
          Object.fromEntries(Object.keys(refusals).map((k) => [k, "Unauthenticated"])),
        );
      },
    );
  }

  it("the api's RPC port serves health to anyone and no other RPC at all", async () => {
    const url = mesh.url("api");
    expect((await plainClient(Health, PROTOCOLS[0]![1](url)).check({ service: "" })).status).toBe(1);
    for (const headers of [{}, bearer(admin.token)]) {
      expect(await outcome(client(ConductorService, url).listFlavors({}, { headers }))).toBe("Unimplemented");
    }
  });
});

describe("identity headers", () => {
  let a: UserToken;
  let networkOfB: string;
  beforeAll(async () => {
    a = await mesh.token({ user: "auth-alice", project: "auth-project-a", roles: ["member"] });
    const b = await mesh.token({ user: "auth-bob", project: "auth-project-b", roles: ["member"] });
    const net = client(NetworkService, mesh.url("network-adapter"));
    await net.createNetwork({ name: "net-of-a" }, { headers: bearer(a.token) });
    networkOfB = (await net.createNetwork({ name: "net-of-b" }, { headers: bearer(b.token) })).network!.id;
  });

  const claimB = () => ({
    "x-stratus-user-id": "auth-bob",
    "x-stratus-project-id": "not-mine",
    "x-stratus-roles": "admin,member,reader",
  });

  it("are ignored beside a user's token: project A's user naming project B and admin acts as A", async () => {
    const net = client(NetworkService, mesh.url("network-adapter"));
    const seen = await net.listNetworks({}, { headers: { ...bearer(a.token), ...claimB() } });
    expect(seen.networks.map((n) => n.name)).toContain("net-of-a");
    expect(seen.networks.map((n) => n.id)).not.toContain(networkOfB);
    expect(
      await outcome(net.getNetwork({ id: networkOfB }, { headers: { ...bearer(a.token), ...claimB() } })),
    ).toBe("NotFound");
    const conductor = client(ConductorService, mesh.url("conductor"));
    expect(
      await outcome(
        conductor.createFlavor(
          { flavor: { name: "mine", vcpus: 1, ramMb: 64, diskGb: 1 } },
          { headers: { ...bearer(a.token), ...claimB() } },
        ),
      ),
    ).toBe("PermissionDenied");
  });

  it("are ignored beside the token of a service not allowed to act for users", async () => {
    const agent = await mesh.identity.serviceToken("compute-agent");
    const conductor = client(ConductorService, mesh.url("conductor"));
    expect(await outcome(conductor.listServers({}, { headers: { ...bearer(agent), ...claimB() } }))).toBe(
      "PermissionDenied",
    );
  });
});

describe("a compute agent's own credential", () => {
  let agent: string;
  let member: UserToken;
  let portId: string;
  let serverId: string;
  beforeAll(async () => {
    agent = await mesh.identity.serviceToken("compute-agent");
    member = await mesh.token({ user: "auth-carol", project: "auth-project-c", roles: ["member"] });
    const net = client(NetworkService, mesh.url("network-adapter"));
    const headers = bearer(member.token);
    const { network } = await net.createNetwork({ name: "net-of-c" }, { headers });
    await net.createSubnet({ networkId: network!.id, cidr: "10.77.0.0/24" }, { headers });
    portId = (await net.createPort({ networkId: network!.id }, { headers })).port!.id;
    const conductor = client(ConductorService, mesh.url("conductor"));
    const { flavors } = await conductor.listFlavors({}, { headers });
    serverId = (
      await conductor.createServers(
        { name: "c-1", flavorId: flavors[0]!.id, imageRef: "img", networkMode: NetworkMode.NONE },
        { headers },
      )
    ).servers[0]!.id;
  });

  it("does what the agent does (reports its host's physical networks)", async () => {
    const net = client(NetworkService, mesh.url("network-adapter"));
    const answer = net.reportHostPhysicalNetworks(
      { host: "auth-1", physicalNetworks: [] },
      { headers: bearer(agent) },
    );
    expect(await outcome(answer)).toBe("ok");
  });

  it("cannot delete a port, allocations or a server, nor create a flavor, acting for anyone or not", async () => {
    const calls = (headers: Headers) => ({
      DeletePort: () =>
        client(NetworkService, mesh.url("network-adapter")).deletePort({ id: portId }, { headers }),
      DeleteAllocations: () =>
        client(PlacementService, mesh.url("scheduler")).deleteAllocations(
          { consumerUuid: serverId },
          { headers },
        ),
      CreateFlavor: () =>
        client(ConductorService, mesh.url("conductor")).createFlavor(
          { flavor: { name: "agent-made", vcpus: 1, ramMb: 64, diskGb: 1 } },
          { headers },
        ),
      DeleteServer: () =>
        client(ConductorService, mesh.url("conductor")).deleteServer({ id: serverId }, { headers }),
    });
    for (const headers of [
      bearer(agent),
      { ...bearer(agent), "x-stratus-user-id": member.userId, "x-stratus-roles": "admin" },
    ]) {
      const got: Record<string, string> = {};
      for (const [name, call] of Object.entries(calls(headers))) got[name] = await outcome(call());
      expect(got).toEqual({
        DeletePort: "PermissionDenied",
        DeleteAllocations: "PermissionDenied",
        CreateFlavor: "PermissionDenied",
        DeleteServer: "PermissionDenied",
      });
    }
    const net = client(NetworkService, mesh.url("network-adapter"));
    expect((await net.getPort({ id: portId }, { headers: bearer(member.token) })).port?.id).toBe(portId);
  });

  it("the issue's attacks: without credentials every one is Unauthenticated; another project's user is refused", async () => {
    const mallory = await mesh.token({ user: "auth-mallory", project: "auth-project-m", roles: ["member"] });
    const attacks = (headers: Headers) => [
      client(NetworkService, mesh.url("network-adapter")).deletePort({ id: portId }, { headers }),
      client(PlacementService, mesh.url("scheduler")).deleteAllocations(
        { consumerUuid: serverId },
        { headers },
      ),
      client(ConductorService, mesh.url("conductor")).deleteServer({ id: serverId }, { headers }),
      client(ConductorService, mesh.url("conductor")).createFlavor(
        { flavor: { name: "free", vcpus: 64, ramMb: 1, diskGb: 1 } },
        { headers },
      ),
    ];
    expect(await Promise.all(attacks({}).map(outcome))).toEqual(Array(4).fill("Unauthenticated"));
    expect(await Promise.all(attacks(bearer(mallory.token)).map(outcome))).toEqual([
      "NotFound",
      "PermissionDenied",
      "NotFound",
      "PermissionDenied",
    ]);
    const net = client(NetworkService, mesh.url("network-adapter"));
    expect((await net.getPort({ id: portId }, { headers: bearer(member.token) })).port?.id).toBe(portId);
    const conductor = client(ConductorService, mesh.url("conductor"));
    const server = (await conductor.getServer({ id: serverId }, { headers: bearer(member.token) })).server;
    expect(server?.deleted).toBe(false);
  });
});

describe("revocation", () => {
  it("reaches every service within a second of DELETE /v3/auth/tokens", async () => {
    const { token } = await mesh.token({ user: "auth-revoked", project: "auth-admin", roles: ["admin"] });
    for (const [service, read] of READS) {
      expect([service, await outcome(read(mesh.url(service), 0, bearer(token)))]).toEqual([service, "ok"]);
    }
    await mesh.identity.admin.revokeToken(token);
    const revokedAt = Date.now();
    const took = await Promise.all(
      READS.map(async ([service, read]) => {
        while ((await outcome(read(mesh.url(service), 0, bearer(token)))) === "ok") {
          if (Date.now() - revokedAt > 5000) break;
          await new Promise((r) => setTimeout(r, 20));
        }
        return [service, Date.now() - revokedAt] as const;
      }),
    );
    for (const [service, ms] of took) expect([service, ms <= 1000]).toEqual([service, true]);
    for (const [service, read] of READS) {
      expect([service, await outcome(read(mesh.url(service), 0, bearer(token)))]).toEqual([
        service,
        "Unauthenticated",
      ]);
    }
  });
});
