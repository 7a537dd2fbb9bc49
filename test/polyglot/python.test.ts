// Proof in another language (issue 25): a Python client generated from proto/ with the
// distribution's protoc and grpc_python_plugin (Debian protobuf-compiler, protobuf-compiler-grpc,
// python3-grpcio, python3-protobuf) into a temp dir, as the README tells a user to, then run by
// Debian's python against the real mesh: health and reflection, a read RPC with a user's token
// (and refused without one), and a build watched to ACTIVE through ServerWatchService.
import { execFile } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { promisify } from "node:util";
import { PlacementService } from "@stratus/contracts/scheduler/v1/placement";
import { serviceClient } from "@stratus/runtime";
import { type Mesh, repoRoot, startMesh } from "@stratus/runtime/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { until } from "../conductor/helpers.js";

const run = promisify(execFile);
const PROTOC = "/usr/bin/protoc";
const PLUGIN = "/usr/bin/grpc_python_plugin";
// Debian's python, with Debian's grpcio and protobuf (python3 on PATH may be another one).
const PYTHON = "/usr/bin/python3";

async function missingTools(): Promise<string[]> {
  const missing = [PROTOC, PLUGIN, PYTHON].filter((p) => !existsSync(p));
  if (existsSync(PYTHON)) {
    await run(PYTHON, ["-c", "import grpc, google.protobuf"]).catch(() =>
      missing.push("python3-grpcio / python3-protobuf"),
    );
  }
  return missing;
}

const missing = await missingTools();
// In CI (CI=true, as .ci/run sets it) the tools must be there: missing, the test fails.
if (missing.length > 0 && process.env.CI === "true") {
  throw new Error(`CI=true but ${missing.join(", ")} is not installed: the Python client test cannot run`);
}
if (missing.length > 0)
  console.warn(`${missing.join(", ")} not installed: the Python client test is skipped`);

function protoFiles(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const name of readdirSync(d)) {
      const p = join(d, name);
      if (statSync(p).isDirectory()) walk(p);
      else if (name.endsWith(".proto")) out.push(relative(dir, p));
    }
  };
  walk(dir);
  return out.sort();
}

describe.skipIf(missing.length > 0)("a Python client generated from proto/", () => {
  let mesh: Mesh;
  let out: string;

  beforeAll(async () => {
    out = mkdtempSync(join(tmpdir(), "stratus-python-"));
    // What the README says: Stratus's contracts from proto/, and a descriptor set of the
    // upstream gRPC protocols (third_party/proto) for health and reflection.
    const proto = join(repoRoot, "proto");
    await run(PROTOC, [
      `-I${proto}`,
      `--python_out=${out}`,
      `--grpc_python_out=${out}`,
      `--plugin=protoc-gen-grpc_python=${PLUGIN}`,
      ...protoFiles(proto),
    ]);
    await run(PROTOC, [
      `-I${join(repoRoot, "third_party/proto")}`,
      "--include_imports",
      `--descriptor_set_out=${join(out, "grpc-protocols.binpb")}`,
      "grpc/health/v1/health.proto",
      "grpc/reflection/v1/reflection.proto",
    ]);
    mesh = await startMesh({
      services: ["scheduler", "network-adapter", "conductor", "compute-agent", "api"],
      serviceEnv: { "compute-agent": { COMPUTE_HOSTS: "py-[1-2]" } },
    });
    const placement = serviceClient(PlacementService, mesh.url("scheduler"));
    await until(
      "hosts registered",
      async () => (await placement.listResourceProviders({})).providers.length >= 2,
      90_000,
    );
  }, 300_000);

  afterAll(async () => {
    await mesh?.close();
    if (out) rmSync(out, { recursive: true, force: true });
  });

  it("generates no top-level package that shadows grpcio", () => {
    expect(readdirSync(out).sort()).toEqual(["grpc-protocols.binpb", "stratus"]);
  });

  it("calls health, reflection and a read RPC, and watches a build to ACTIVE", async () => {
    const user = await mesh.token({ user: "pythonista", project: "polyglot", roles: ["member"] });
    const { stdout } = await run(
      PYTHON,
      [
        join(repoRoot, "test/polyglot/client.py"),
        mesh.url("api").replace("http://", ""),
        mesh.url("conductor").replace("http://", ""),
        user.token,
        join(out, "grpc-protocols.binpb"),
      ],
      // Debian's python with the generated code first on its path, and nothing of the caller's.
      { env: { PATH: "/usr/bin:/bin", PYTHONPATH: out, HOME: out }, timeout: 120_000 },
    );
    const seen = JSON.parse(stdout);
    expect(seen.health).toBe("SERVING");
    expect(seen.services).toEqual(
      expect.arrayContaining([
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
        "stratus.compute.v1.ServerWatchService",
      ]),
    );
    expect(seen.health_file).toEqual(["grpc/health/v1/health.proto"]);
    expect(seen.watch_files).toEqual(
      expect.arrayContaining([
        "stratus/compute/v1/server_watch.proto",
        "stratus/events/v1/events.proto",
        "stratus/events/v1/subject.proto",
      ]),
    );
    expect(seen.state_subject).toEqual(["stratus.server.state.{project_id}"]);
    expect(seen.without_token).toBe("UNAUTHENTICATED");
    expect(seen.flavors).toContain("m1.tiny");
    expect(seen.ready_has_change).toBe(false);
    expect(
      seen.steps.map((s: { vm_state: string; task_state: string }) => `${s.vm_state}/${s.task_state}`),
    ).toEqual(["building/scheduling", "building/spawning", "active/"]);
    expect(seen.steps.at(-1).status).toBe("ACTIVE");
  }, 150_000);
});
