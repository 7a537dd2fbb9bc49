import type { AuthenticatedIdentity } from "@stratus/runtime/auth";
import { describe, expect, it } from "vitest";
import { allowed, callerDomain, listingDomain } from "./policy.js";

function caller(over: Partial<AuthenticatedIdentity>): AuthenticatedIdentity {
  return {
    userId: "u1",
    userName: "u",
    userDomainId: "d0",
    projectId: "",
    projectName: "",
    projectDomainId: "",
    domainId: "",
    system: false,
    roles: [],
    issuedAt: new Date(),
    expiresAt: new Date(),
    auditIds: ["a"],
    methods: ["password"],
    ...over,
  };
}

const projectAdmin = caller({ projectId: "p1", projectDomainId: "d1", roles: ["admin", "member", "reader"] });
const projectMember = caller({ projectId: "p1", projectDomainId: "d1", roles: ["member", "reader"] });
const systemReader = caller({ system: true, roles: ["reader"] });
const domainReader = caller({ domainId: "d1", roles: ["reader"] });

describe("identity policy (Keystone's defaults with admin, member, reader)", () => {
  it("lets an admin on any scope do everything", () => {
    for (const action of [
      "identity:create_user",
      "identity:delete_domain",
      "identity:create_grant",
    ] as const) {
      expect(allowed(action, projectAdmin, { domainId: "elsewhere" })).toBe(true);
    }
  });

  it("lets a system reader read everything and write nothing", () => {
    expect(allowed("identity:list_users", systemReader)).toBe(true);
    expect(allowed("identity:list_role_assignments", systemReader)).toBe(true);
    expect(allowed("identity:get_service", systemReader)).toBe(true);
    expect(allowed("identity:create_user", systemReader)).toBe(false);
    expect(allowed("identity:revoke_grant", systemReader)).toBe(false);
  });

  it("lets a domain reader read its own domain only", () => {
    expect(allowed("identity:list_users", domainReader, { domainId: "d1" })).toBe(true);
    expect(allowed("identity:list_users", domainReader, { domainId: "d2" })).toBe(false);
    expect(allowed("identity:get_project", domainReader, { projectId: "p9", domainId: "d1" })).toBe(true);
    expect(allowed("identity:create_project", domainReader, { domainId: "d1" })).toBe(false);
  });

  it("gives a project member its own user, project, tokens, password and credentials, nothing more", () => {
    expect(allowed("identity:get_user", projectMember, { userId: "u1" })).toBe(true);
    expect(allowed("identity:get_user", projectMember, { userId: "u2" })).toBe(false);
    expect(allowed("identity:get_project", projectMember, { projectId: "p1" })).toBe(true);
    expect(allowed("identity:get_project", projectMember, { projectId: "p2" })).toBe(false);
    expect(allowed("identity:list_users", projectMember, {})).toBe(false);
    expect(allowed("identity:create_project", projectMember, {})).toBe(false);
    expect(allowed("identity:create_application_credential", projectMember, { userId: "u1" })).toBe(true);
    expect(allowed("identity:create_application_credential", projectMember, { userId: "u2" })).toBe(false);
    expect(allowed("identity:create_application_credential", projectAdmin, { userId: "u2" })).toBe(false);
    expect(allowed("identity:delete_application_credential", projectAdmin, { userId: "u2" })).toBe(true);
    expect(allowed("identity:revoke_token", projectMember, { userId: "u1" })).toBe(true);
    expect(allowed("identity:validate_token", projectMember, { userId: "u2" })).toBe(false);
  });

  it("limits listings to the caller's domain unless it reads the whole cloud", () => {
    expect(listingDomain(systemReader, "dx")).toBe("dx");
    expect(listingDomain(systemReader, undefined)).toBeUndefined();
    expect(listingDomain(domainReader, "dx")).toBe("d1");
    expect(listingDomain(projectMember, "dx")).toBeUndefined();
    expect(callerDomain(projectMember)).toBe("d1");
    expect(callerDomain(domainReader)).toBe("d1");
    expect(callerDomain(systemReader)).toBe("d0");
  });
});
