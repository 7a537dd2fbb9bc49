// What the RPC pipeline's authentication stage asks of a call (rpc/pipeline.ts): who the caller is,
// from its bearer token checked by the process's TokenValidator (and, for a service allowed to act
// for users, the user it asserts), and whether that principal may call the method (the policies
// the service declared). Every protocol and the fast path ask the same questions here.
import type { Principal } from "../context.js";
import { StratusError } from "../errors.js";
import { readActingFor } from "./acting-for.js";
import type { AuthenticatedIdentity, TokenValidator } from "./identity.js";
import { PolicyTable, type ServicePolicy } from "./method-policy.js";
import { ACTS_FOR_USERS, type ServicePrincipalName, tokenPrincipal } from "./principal.js";

export const AUTHORIZATION_HEADER = "authorization";
const BEARER = /^Bearer +(\S+)$/i;

interface HeaderSource {
  get(name: string): string | null | undefined;
}

/** The pipeline's questions about a call; the stage itself is in rpc/pipeline.ts. */
export interface CallAuthentication {
  /** The caller; throws unauthorized without a valid bearer token. */
  principalOf(headers: HeaderSource): Promise<Principal>;
  /** Throws forbidden unless `principal` may call the method. */
  authorize(principal: Principal, serviceTypeName: string, methodName: string): void;
}

export class RpcAuthentication implements CallAuthentication {
  private readonly policies: PolicyTable;
  /** A token's own principal, made once per validated identity (a validator keeps identities). */
  private readonly principals = new WeakMap<AuthenticatedIdentity, Principal>();

  constructor(
    private readonly validator: TokenValidator,
    policies: readonly ServicePolicy[],
  ) {
    this.policies = new PolicyTable(policies);
  }

  async principalOf(headers: HeaderSource): Promise<Principal> {
    const match = BEARER.exec(headers.get(AUTHORIZATION_HEADER) ?? "");
    if (!match) throw new StratusError("unauthorized", "The request you have made requires authentication.");
    const identity = await this.validator.validate(match[1]!);
    let own = this.principals.get(identity);
    if (!own) {
      own = tokenPrincipal(identity);
      this.principals.set(identity, own);
    }
    if (own.kind === "service" && ACTS_FOR_USERS[own.service as ServicePrincipalName]) {
      return readActingFor(headers, own.service as ServicePrincipalName) ?? own;
    }
    return own;
  }

  authorize(principal: Principal, serviceTypeName: string, methodName: string): void {
    this.policies.authorize(principal, serviceTypeName, methodName);
  }
}
