// The pipeline's authentication stage on every protocol and the fast path: no bearer or one the
// validator refuses is Unauthenticated before the handler runs; the handler runs as the token's
// principal (acting-for headers honoured only from a service allowed to act for users); the
// method's policy decides, and a method without one is refused; health stays open.
import { Code, createClient, type Transport } from "@connectrpc/connect";
import {
  createConnectTransport,
  createGrpcTransport,
  createGrpcWebTransport,
} from "@connectrpc/connect-node";
import { Health } from "@stratus/contracts/grpc/health/v1";
import { PlacementService } from "@stratus/contracts/scheduler/v1/placement";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { AuthenticatedIdentity, TokenValidator } from "../auth/identity.js";
import { allow, type MethodPolicy, type ServicePolicy } from "../auth/method-policy.js";
import { RpcAuthentication } from "../auth/rpc-authentication.js";
import { currentContext, newRequestId } from "../context.js";
import { StratusError } from "../errors.js";
import { refusal, startTestRpcServer } from "../testing/rpc.js";
import { bindService } from "./binding.js";
import { fastUnaryTransport } from "./fast-client.js";
import type { RpcServer } from "./server.js";

function identity(userName: string, projectId: string, roles: string[]): AuthenticatedIdentity {
  return {
    userId: `id-${userName}`,
    userName,
    userDomainId: "default",
    projectId,
    projectName: projectId,
    projectDomainId: "default",
    domainId: "",
    system: false,
    roles,
    issuedAt: new Date(),
    expiresAt: new Date(Date.now() + 3600_000),
    auditIds: ["a"],
    methods: ["password"],
  };
}

/** The tokens this test's validator knows; any other is refused as a validator refuses it. */
const TOKENS: Record<string, AuthenticatedIdentity> = {
  alice: identity("alice", "project-a", ["member", "reader"]),
  root: identity("root", "admin", ["admin", "member", "reader"]),
  conductor: identity("stratus-conductor", "service", ["service"]),
  agent: identity("stratus-compute-agent", "service", ["service"]),
  // A user named like a service but without the service role is a user.
  impostor: identity("stratus-conductor", "project-a", ["member", "reader"]),
};
const validator: TokenValidator = {
  async validate(token) {
    const known = TOKENS[token];
    if (!known) throw new StratusError("unauthorized", "The token is invalid.");
    return known;
  },
  async close() {},
};

const methods: Record<string, MethodPolicy> = Object.fromEntries(
  PlacementService.methods.map((m) => [m.localName, allow("admin")]),
);
methods.getResourceProvider = allow("reader", "conductor");
delete methods.getUsages;
const policy: ServicePolicy = { service: PlacementService, methods };

const seen: unknown[] = [];
const placement = bindService(PlacementService, {
  getResourceProvider(req) {
    const c = currentContext()!;
    seen.push({ ...c.principal, isAdmin: c.isAdmin, requestId: c.requestId });
    return { provider: { uuid: req.uuid, name: "rack1-1" } };
  },
  deleteAllocations: () => ({}),
  getUsages: () => ({}),
});

let server: RpcServer;
beforeAll(async () => {
  server = await startTestRpcServer([placement], { auth: new RpcAuthentication(validator, [policy]) });
});
afterAll(() => server.close());

const transports: [string, () => Transport][] = [
  [
    "the fast path",
    () =>
      fastUnaryTransport({
        baseUrl: server.url,
        defaultTimeoutMs: 30_000,
        streams: createConnectTransport({ baseUrl: server.url, httpVersion: "2" }),
      }),
  ],
  ["Connect JSON", () => createConnectTransport({ baseUrl: server.url, httpVersion: "2" })],
  ["gRPC", () => createGrpcTransport({ baseUrl: server.url })],
  ["gRPC-Web", () => createGrpcWebTransport({ baseUrl: server.url, httpVersion: "2" })],
];

const bearer = (token: string) => ({ authorization: `Bearer ${token}` });
const actingFor = {
  "x-stratus-user-id": "bob",
  "x-stratus-project-id": "project-b",
  "x-stratus-roles": "admin,member,reader",
};

describe.each(transports)("authentication on %s", (_, make) => {
  const client = () => createClient(PlacementService, make());

  it("refuses a call without a token, or with one the validator refuses, before the handler", async () => {
    const before = seen.length;
    for (const headers of [{}, { authorization: "alice" }, bearer("forged"), actingFor]) {
      const err = await refusal(client().getResourceProvider({ uuid: "u" }, { headers }));
      expect(err.code).toBe(Code.Unauthenticated);
    }
    expect(seen.length).toBe(before);
  });

  it("runs the handler as the token's user, under the caller's request id; its acting-for headers are ignored", async () => {
    const requestId = newRequestId();
    await client().getResourceProvider(
      { uuid: "u" },
      { headers: { ...bearer("alice"), ...actingFor, "x-openstack-request-id": requestId } },
    );
    expect(seen.at(-1)).toMatchObject({
      kind: "user",
      userId: "id-alice",
      projectId: "project-a",
      service: "",
      isAdmin: false,
      requestId,
    });
    await client().getResourceProvider({ uuid: "u" }, { headers: { ...bearer("impostor"), ...actingFor } });
    expect(seen.at(-1)).toMatchObject({
      kind: "user",
      userId: "id-stratus-conductor",
      projectId: "project-a",
    });
  });

  it("honours acting-for headers from the conductor, and runs the conductor as itself without them", async () => {
    await client().getResourceProvider({ uuid: "u" }, { headers: { ...bearer("conductor"), ...actingFor } });
    expect(seen.at(-1)).toMatchObject({
      kind: "user",
      userId: "bob",
      projectId: "project-b",
      roles: ["admin", "member", "reader"],
      service: "conductor",
      isAdmin: true,
    });
    await client().getResourceProvider({ uuid: "u" }, { headers: bearer("conductor") });
    expect(seen.at(-1)).toMatchObject({ kind: "service", service: "conductor", isAdmin: true });
  });

  it("ignores acting-for headers from a service not allowed to act for users, which its policy then refuses", async () => {
    const err = await refusal(
      client().getResourceProvider({ uuid: "u" }, { headers: { ...bearer("agent"), ...actingFor } }),
    );
    expect(err.code).toBe(Code.PermissionDenied);
    expect(err.rawMessage).toContain("service compute-agent");
  });

  it("applies the method's policy: a member may not delete allocations, an admin may", async () => {
    const err = await refusal(
      client().deleteAllocations({ consumerUuid: "c" }, { headers: bearer("alice") }),
    );
    expect(err.code).toBe(Code.PermissionDenied);
    await client().deleteAllocations({ consumerUuid: "c" }, { headers: bearer("root") });
  });

  it("refuses every caller a method without a policy", async () => {
    const err = await refusal(client().getUsages({ providerUuid: "p" }, { headers: bearer("root") }));
    expect(err.code).toBe(Code.PermissionDenied);
    expect(err.rawMessage).toContain("(no policy)");
  });

  it("answers health checks without a token", async () => {
    const health = createClient(Health, make());
    expect((await health.check({ service: "" })).status).toBe(1);
  });
});
