// The foundation: the six real service processes on a real nats-server answer plain gRPC clients
// built from the .proto files (as any language would), list their RPCs by reflection (both open
// to anyone), answer a plain client with a user's token (and refuse it without one), and pass
// events to each other.
import { join } from "node:path";
import { fromBinary } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { ConductorService } from "@stratus/contracts/compute/v1";
import { type Mesh, repoRoot, SERVICE_NAMES, startMesh } from "@stratus/runtime/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

// Stratus's contracts, and the upstream gRPC protocols every port also answers.
const protoDirs = [join(repoRoot, "proto"), join(repoRoot, "third_party/proto")];

function loadGrpc(file: string) {
  const def = protoLoader.loadSync(file, {
    includeDirs: protoDirs,
    keepCase: true,
    defaults: true,
    enums: String,
  });
  return grpc.loadPackageDefinition(def) as Record<string, any>;
}

const health = loadGrpc("grpc/health/v1/health.proto").grpc.health.v1;
const reflection = loadGrpc("grpc/reflection/v1/reflection.proto").grpc.reflection.v1;

function grpcCall<T>(client: grpc.Client, method: string, req: unknown): Promise<T> {
  return new Promise((resolve, reject) =>
    (client as any)[method](req, (err: Error | null, res: T) => (err ? reject(err) : resolve(res))),
  );
}

function reflect(url: string, request: Record<string, string>): Promise<any> {
  const client = new reflection.ServerReflection(
    url.replace("http://", ""),
    grpc.credentials.createInsecure(),
  );
  return new Promise((resolve, reject) => {
    const call = client.ServerReflectionInfo();
    call.on("data", (res: any) => {
      resolve(res);
      call.end();
      client.close();
    });
    call.on("error", reject);
    call.write(request);
  });
}

async function listServices(url: string): Promise<string[]> {
  const res = await reflect(url, { list_services: "*" });
  return res.list_services_response.service.map((s: { name: string }) => s.name);
}

describe("the mesh", () => {
  let mesh: Mesh;
  beforeAll(async () => {
    mesh = await startMesh({ env: { HEARTBEAT_INTERVAL_MS: "200" } });
  });
  afterAll(async () => {
    await mesh?.close();
  });

  it.each(SERVICE_NAMES)("%s reports SERVING to a plain @grpc/grpc-js health client", async (name) => {
    const client = new health.Health(
      mesh.url(name).replace("http://", ""),
      grpc.credentials.createInsecure(),
    );
    const res = await grpcCall<{ status: string }>(client, "Check", { service: "" });
    expect(res.status).toBe("SERVING");
    client.close();
  });

  it("lists each service's RPC services by gRPC reflection", async () => {
    expect(await listServices(mesh.url("network-adapter"))).toContain("stratus.network.v1.NetworkService");
    const scheduler = await listServices(mesh.url("scheduler"));
    expect(scheduler).toEqual(
      expect.arrayContaining([
        "stratus.scheduler.v1.PlacementService",
        "stratus.scheduler.v1.SchedulerService",
        "grpc.health.v1.Health",
      ]),
    );
  });

  it("describes grpc.health.v1.Health by reflection (so buf curl and grpcurl can call it by name)", async () => {
    const res = await reflect(mesh.url("api"), { file_containing_symbol: "grpc.health.v1.Health.Check" });
    const files = (res.file_descriptor_response.file_descriptor_proto as Uint8Array[]).map(
      (bytes) => fromBinary(FileDescriptorProtoSchema, bytes).name,
    );
    expect(files).toEqual(["grpc/health/v1/health.proto"]);
  });

  it("describes a service by reflection with its file and dependencies", async () => {
    const res = await reflect(mesh.url("conductor"), {
      file_containing_symbol: "stratus.compute.v1.ConductorService.CreateServers",
    });
    const files = (res.file_descriptor_response.file_descriptor_proto as Uint8Array[]).map(
      (bytes) => fromBinary(FileDescriptorProtoSchema, bytes).name,
    );
    expect(files).toEqual(["stratus/compute/v1/conductor.proto", "google/protobuf/timestamp.proto"]);
  });

  it("delivers the compute agent's heartbeat event to the conductor (asked with an admin's token)", async () => {
    const conductor = createClient(
      ConductorService,
      createConnectTransport({ baseUrl: mesh.url("conductor"), httpVersion: "2" }),
    );
    const refused = await conductor.listComputeServices({}).then(
      () => undefined,
      (err: unknown) => ConnectError.from(err),
    );
    expect(refused?.code).toBe(Code.Unauthenticated);
    const { token } = await mesh.token({ user: "operator", project: "admin", roles: ["admin"] });
    const headers = { authorization: `Bearer ${token}` };
    let hosts: string[] = [];
    for (let i = 0; i < 50 && hosts.length === 0; i++) {
      const res = await conductor.listComputeServices({}, { headers });
      hosts = res.services.filter((s) => s.state === "up").map((s) => s.host);
      if (!hosts.length) await new Promise((r) => setTimeout(r, 100));
    }
    expect(hosts.length).toBeGreaterThan(0);
  });
});
