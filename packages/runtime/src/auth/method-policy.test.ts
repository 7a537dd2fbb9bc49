// Who a method policy lets through: users by the least role (implied roles count), services as
// themselves by name, a user asserted by a service by either, `tools` always, nobody anonymous;
// and a service whose methods lack policies is refused before it serves.
import { PlacementService } from "@stratus/contracts/scheduler/v1/placement";
import { describe, expect, it } from "vitest";
import type { Principal } from "../context.js";
import { allow, checkPolicies, permits, servicePolicy } from "./method-policy.js";

const user = (roles: string[], service = ""): Principal => ({
  kind: "user",
  userId: "u",
  userName: "u",
  projectId: "p",
  roles,
  service,
});
const service = (name: string): Principal => ({ ...user(["service"]), kind: "service", service: name });

describe("permits", () => {
  it("lets a user through with the role or one that implies it", () => {
    const readers = allow("reader");
    expect(permits(readers, user(["reader"]))).toBe(true);
    expect(permits(readers, user(["admin"]))).toBe(true);
    expect(permits(readers, user([]))).toBe(false);
    expect(permits(allow("admin"), user(["member", "reader"]))).toBe(false);
    expect(permits(allow(undefined, "conductor"), user(["admin"]))).toBe(false);
  });

  it("lets a service through as itself only when named, and `tools` always", () => {
    const policy = allow("admin", "conductor");
    expect(permits(policy, service("conductor"))).toBe(true);
    expect(permits(policy, service("compute-agent"))).toBe(false);
    expect(permits(allow(undefined), service("tools"))).toBe(true);
  });

  it("lets a user asserted by a service through by the user's roles or the service's own right", () => {
    const policy = allow("admin", "conductor");
    expect(permits(policy, user(["member"], "conductor"))).toBe(true);
    expect(permits(policy, user(["member"], "api"))).toBe(false);
    expect(permits(policy, user(["admin"], "api"))).toBe(true);
    expect(permits(allow(undefined), user(["member"], "tools"))).toBe(true);
  });

  it("never lets an anonymous caller through", () => {
    expect(permits(allow("reader"), { ...user(["admin"]), kind: "anonymous" })).toBe(false);
  });
});

describe("checkPolicies", () => {
  it("refuses a bound service without a policy, or with methods left out", () => {
    expect(() => checkPolicies([PlacementService], [])).toThrow("no policy for CreateResourceProvider");
    const all = Object.fromEntries(PlacementService.methods.map((m) => [m.localName, allow("admin")]));
    const complete = servicePolicy(PlacementService, all as never);
    expect(() => checkPolicies([PlacementService], [complete])).not.toThrow();
    const { getUsages: _, ...partial } = all;
    expect(() =>
      checkPolicies([PlacementService], [{ service: PlacementService, methods: partial }]),
    ).toThrow("no policy for GetUsages");
  });
});
