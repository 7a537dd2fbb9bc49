// Keystone's recent answers about tokens, valid and invalid, so that a token used for a burst of
// requests is asked about once per TTL (keystonemiddleware's token cache). Keys are hashes of the
// tokens: the cache never holds a token, so a heap dump or a log of a key reveals none.
import { createHash } from "node:crypto";
import type { AuthenticatedIdentity } from "./identity.js";

export type CachedAnswer = AuthenticatedIdentity | "invalid";

/** The cache key of a token: its SHA-256, as keystonemiddleware's _hash_key. */
export function tokenCacheKey(token: string): string {
  return createHash("sha256").update(token).digest("base64url");
}

export class KeystoneAnswerCache {
  // Insertion order is the eviction order: entries live one TTL (or less, up to their token's
  // expiry), so the oldest entry is the one with the least time left, or close to it.
  private readonly entries = new Map<string, { answer: CachedAnswer; until: number }>();

  constructor(private readonly maxEntries: number) {}

  lookup(key: string, now: number): CachedAnswer | undefined {
    const entry = this.entries.get(key);
    if (!entry) return undefined;
    if (now < entry.until) return entry.answer;
    this.entries.delete(key);
    return undefined;
  }

  /** Keeps answer until `until` (epoch ms); an answer already stale is not kept. */
  remember(key: string, answer: CachedAnswer, until: number, now: number): void {
    this.entries.delete(key);
    if (until <= now) return;
    while (this.entries.size >= this.maxEntries) {
      const oldest = this.entries.keys().next();
      if (oldest.done) break;
      this.entries.delete(oldest.value);
    }
    this.entries.set(key, { answer, until });
  }

  clear(): void {
    this.entries.clear();
  }
}
