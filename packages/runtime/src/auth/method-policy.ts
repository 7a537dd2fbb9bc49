// Who may call each RPC, declared by each service beside its binding: the least user role (Nova's
// and Neutron's defaults: reader reads, member acts in its project, admin everywhere) and the
// services that may call it as themselves. The cores still decide what a permitted caller sees
// and may touch (its project, or everything for an admin or a service); a policy decides only
// whether the call is made at all. A method without a policy is refused.
import type { DescService } from "@bufbuild/protobuf";
import type { Principal } from "../context.js";
import { StratusError } from "../errors.js";
import { hasRole, type ServicePrincipalName, type UserRole } from "./principal.js";

export interface MethodPolicy {
  /** The least role a user needs (its own token, or asserted by a service); absent: no user may. */
  role?: UserRole;
  /** The services that may call it as themselves, and that may make the call for any user they act for. */
  services: readonly ServicePrincipalName[];
}

/** The policies of one service's RPCs: every method has one (a missing one does not compile). */
export interface ServicePolicy<S extends DescService = DescService> {
  service: S;
  methods: Readonly<Record<string, MethodPolicy>>;
}

export function servicePolicy<S extends DescService & { method: Record<string, unknown> }>(
  service: S,
  methods: { [K in keyof S["method"]]: MethodPolicy },
): ServicePolicy<S> {
  return { service, methods: methods as Record<string, MethodPolicy> };
}

/** A policy: users with `role` (or above), and these services as themselves. */
export function allow(role: UserRole | undefined, ...services: ServicePrincipalName[]): MethodPolicy {
  return role ? { role, services } : { services };
}

/** The methods of `policy.service` it declares no policy for (empty when complete). */
export function methodsWithoutPolicy(policy: ServicePolicy): string[] {
  return policy.service.methods.filter((m) => !Object.hasOwn(policy.methods, m.localName)).map((m) => m.name);
}

/** Throws unless every method of every service in `services` has a policy in `policies`. */
export function checkPolicies(services: readonly DescService[], policies: readonly ServicePolicy[]): void {
  for (const service of services) {
    const policy = policies.find((p) => p.service.typeName === service.typeName);
    const missing = policy ? methodsWithoutPolicy(policy) : service.methods.map((m) => m.name);
    if (missing.length) {
      throw new Error(`${service.typeName}: no policy for ${missing.join(", ")} (auth/method-policy.ts)`);
    }
  }
}

/**
 * Whether `principal` may make a call `policy` governs. `tools` (the operator's and the harness's
 * principal) may make every call. A user asserted by a service may make the calls the user's roles
 * allow, and those the asserting service may make as itself: acting for a user narrows what the
 * callee lets the call see (the user's project), it never takes from the service what it may do.
 */
export function permits(policy: MethodPolicy, principal: Principal): boolean {
  const service = principal.service as ServicePrincipalName;
  switch (principal.kind) {
    case "service":
      return service === "tools" || policy.services.includes(service);
    case "user":
      if (policy.role !== undefined && hasRole(principal.roles, policy.role)) return true;
      return principal.service !== "" && (service === "tools" || policy.services.includes(service));
    default:
      return false;
  }
}

/** Every method's policy, by path (`/<service type name>/<method name>`, as the URL has it). */
export class PolicyTable {
  private readonly byPath = new Map<string, MethodPolicy>();

  constructor(policies: readonly ServicePolicy[]) {
    for (const p of policies) {
      for (const m of p.service.methods) {
        const policy = p.methods[m.localName];
        if (policy) this.byPath.set(`/${p.service.typeName}/${m.name}`, policy);
      }
    }
  }

  /** Throws forbidden unless `principal` may call the method (a method without a policy: never). */
  authorize(principal: Principal, serviceTypeName: string, methodName: string): void {
    const policy = this.byPath.get(`/${serviceTypeName}/${methodName}`);
    if (policy && permits(policy, principal)) return;
    throw new StratusError(
      "forbidden",
      `${describe(principal)} may not call ${serviceTypeName}/${methodName}${policy ? "" : " (no policy)"}`,
    );
  }
}

function describe(p: Principal): string {
  if (p.kind === "service") return `service ${p.service || "(this process)"}`;
  if (p.kind === "user") return `user ${p.userId}${p.service ? ` (through ${p.service})` : ""}`;
  return "an anonymous caller";
}
