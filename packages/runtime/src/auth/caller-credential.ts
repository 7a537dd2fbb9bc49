// What this process presents when it calls another service: its service credential's bearer
// token and, when the call acts for a user and the service may act for users, the acting-for
// headers of that user. A service installs its credential at boot (boot.ts); the test harness
// installs one in the test process for the services it started (testing/credentials.ts).
import { currentContext } from "../context.js";
import { writeActingFor } from "./acting-for.js";
import { ACTS_FOR_USERS, type ServicePrincipalName } from "./principal.js";
import { AUTHORIZATION_HEADER } from "./rpc-authentication.js";

/** A credential outgoing calls carry: a token, kept fresh. */
export interface CallerCredential {
  /** The service principal it is; undefined for a user's own credential (it asserts no one). */
  readonly service: ServicePrincipalName | undefined;
  /** A token with life left, or undefined while there is none (not logged in yet, or failing to). */
  token(): string | undefined;
  /**
   * Logs in again after a callee refused `rejected` (revoked, or expired early); concurrent callers
   * share one login, and a token already replaced is not replaced again.
   */
  renew(rejected: string | undefined): Promise<void>;
}

let processCredential: CallerCredential | undefined;
const byOrigin = new Map<string, CallerCredential>();

/**
 * Installs the credential calls from this process carry: to every peer, or only to the given
 * base URLs (the test harness: each mesh started in one test process has its own identity).
 */
export function useCallerCredential(credential: CallerCredential, baseUrls?: readonly string[]): void {
  if (!baseUrls) {
    processCredential = credential;
    return;
  }
  for (const url of baseUrls) byOrigin.set(new URL(url).origin, credential);
}

/** Forgets a credential installed for base URLs (the services it was for are gone). */
export function dropCallerCredential(credential: CallerCredential): void {
  if (processCredential === credential) processCredential = undefined;
  for (const [origin, c] of byOrigin) if (c === credential) byOrigin.delete(origin);
}

/** The credential calls to `baseUrl` carry, if any. */
export function callerCredentialFor(baseUrl: string): CallerCredential | undefined {
  if (byOrigin.size > 0) {
    const own = byOrigin.get(new URL(baseUrl).origin);
    if (own) return own;
  }
  return processCredential;
}

interface HeaderSink {
  set(name: string, value: string): void;
}

/** The caller's headers of a call to `credential`'s peer, in the current request context. */
export function writeCallerHeaders(headers: HeaderSink, credential: CallerCredential | undefined): void {
  if (!credential) return;
  const token = credential.token();
  if (token) headers.set(AUTHORIZATION_HEADER, `Bearer ${token}`);
  const principal = currentContext()?.principal;
  if (principal?.kind === "user" && credential.service && ACTS_FOR_USERS[credential.service]) {
    writeActingFor(headers, principal);
  }
}
