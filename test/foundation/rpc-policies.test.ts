// Every RPC of every service the contracts define has a policy (each service's *-policy.ts, beside
// its binding). A service also refuses to start with one missing (checkPolicies in serve()); this
// names the gap before any process is started, and catches a new contract service left without.
import { readdirSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import type { DescService } from "@bufbuild/protobuf";
import { checkPolicies } from "@stratus/runtime/auth";
import { repoRoot } from "@stratus/runtime/testing";
import { describe, expect, it } from "vitest";
import { serverWatchPolicy } from "../../services/api/src/watch/server-watch-service.js";
import { computeAgentPolicy } from "../../services/compute-agent/src/rpc/compute-agent-policy.js";
import { conductorPolicy } from "../../services/conductor/src/rpc/conductor-policy.js";
import { identityPolicy } from "../../services/identity/src/rpc/identity-policy.js";
import { networkPolicy } from "../../services/network-adapter/src/network-policy.js";
import { placementPolicy } from "../../services/scheduler/src/rpc/placement-policy.js";
import { schedulerPolicy } from "../../services/scheduler/src/rpc/scheduler-policy.js";

const POLICIES = [
  conductorPolicy,
  computeAgentPolicy,
  identityPolicy,
  networkPolicy,
  placementPolicy,
  schedulerPolicy,
  serverWatchPolicy,
];

/** Every service the generated contracts of stratus.* declare. */
async function contractServices(): Promise<DescService[]> {
  const dir = join(repoRoot, "packages/contracts/src/gen/stratus");
  const files = readdirSync(dir, { recursive: true, encoding: "utf8" }).filter((f) => f.endsWith("_pb.ts"));
  const services: DescService[] = [];
  for (const f of files) {
    const module: Record<string, unknown> = await import(pathToFileURL(join(dir, f)).href);
    for (const value of Object.values(module)) {
      if ((value as { kind?: string } | null)?.kind === "service") services.push(value as DescService);
    }
  }
  return services;
}

describe("the RPC policies", () => {
  it("cover every method of every service of the contracts", async () => {
    const services = await contractServices();
    expect(services.map((s) => s.typeName)).toContain("stratus.network.v1.NetworkService");
    expect(() => checkPolicies(services, POLICIES)).not.toThrow();
  });
});
