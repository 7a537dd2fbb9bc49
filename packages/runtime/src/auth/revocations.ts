// Keystone's revocation events and the one rule that says whether a token is revoked: a token
// matches an event when it matches every field the event sets and was issued at or before the
// event's issued_before. The list is indexed so that a check costs a few map look-ups.
import type { AuthenticatedIdentity } from "./identity.js";

export interface Revocation {
  /** Unique per revocation. */
  id: string;
  /** Each field below is "" (or false) when the event does not constrain it. */
  auditId: string;
  userId: string;
  projectId: string;
  /** The token's domain scope, its user's domain or its project's domain. */
  domainId: string;
  /** Only system-scoped tokens. */
  system: boolean;
  applicationCredentialId: string;
  issuedBefore: Date;
  revokedAt: Date;
}

/** Whether the revocation applies to a token carrying this identity. */
export function revokes(r: Revocation, token: AuthenticatedIdentity): boolean {
  if (token.issuedAt.getTime() > r.issuedBefore.getTime()) return false;
  if (r.auditId && token.auditIds[0] !== r.auditId) return false;
  if (r.userId && token.userId !== r.userId) return false;
  if (r.projectId && token.projectId !== r.projectId) return false;
  if (
    r.domainId &&
    token.domainId !== r.domainId &&
    token.userDomainId !== r.domainId &&
    token.projectDomainId !== r.domainId
  ) {
    return false;
  }
  if (r.system && !token.system) return false;
  if (r.applicationCredentialId && token.applicationCredentialId !== r.applicationCredentialId) return false;
  return true;
}

/**
 * The bucket a revocation is filed under: its most selective field. Every revocation that can
 * match a token is in one of the token's buckets (revocationBuckets), since each field it sets must
 * equal the token's.
 */
function bucketOf(r: Revocation): string {
  if (r.auditId) return `a:${r.auditId}`;
  if (r.applicationCredentialId) return `c:${r.applicationCredentialId}`;
  if (r.userId) return `u:${r.userId}`;
  if (r.projectId) return `p:${r.projectId}`;
  if (r.domainId) return `d:${r.domainId}`;
  return "*";
}

/** The buckets where a revocation of this token can be: computed once per token. */
export function revocationBuckets(token: AuthenticatedIdentity): string[] {
  const keys = [`a:${token.auditIds[0]}`, `u:${token.userId}`, "*"];
  if (token.applicationCredentialId) keys.push(`c:${token.applicationCredentialId}`);
  if (token.projectId) keys.push(`p:${token.projectId}`);
  for (const d of new Set([token.domainId, token.userDomainId, token.projectDomainId])) {
    if (d) keys.push(`d:${d}`);
  }
  return keys;
}

/** The revocations still relevant, indexed; older ones are dropped by prune. */
export class RevocationList {
  private readonly buckets = new Map<string, Revocation[]>();
  private readonly ids = new Set<string>();

  get size(): number {
    return this.ids.size;
  }

  /** Adds a revocation; one already known (same id) is ignored. */
  add(r: Revocation): void {
    if (this.ids.has(r.id)) return;
    this.ids.add(r.id);
    const key = bucketOf(r);
    const list = this.buckets.get(key);
    if (list) list.push(r);
    else this.buckets.set(key, [r]);
  }

  /** Whether the token is revoked; `buckets` is revocationBuckets(token), kept with the token. */
  isRevoked(token: AuthenticatedIdentity, buckets = revocationBuckets(token)): boolean {
    for (const key of buckets) {
      const list = this.buckets.get(key);
      if (list) for (const r of list) if (revokes(r, token)) return true;
    }
    return false;
  }

  /** Drops revocations that no token still in its lifetime can match (issued before `before`). */
  prune(before: Date): void {
    const limit = before.getTime();
    for (const [key, list] of this.buckets) {
      const kept = list.filter((r) => r.issuedBefore.getTime() >= limit);
      for (const r of list) if (r.issuedBefore.getTime() < limit) this.ids.delete(r.id);
      if (kept.length === 0) this.buckets.delete(key);
      else if (kept.length !== list.length) this.buckets.set(key, kept);
    }
  }

  clear(): void {
    this.buckets.clear();
    this.ids.clear();
  }
}
