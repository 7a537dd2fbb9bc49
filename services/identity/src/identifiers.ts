// Keystone's identifier shapes: resource ids are uuid4 hex, audit ids 16 random bytes base64url.
import { randomBytes, randomUUID } from "node:crypto";

export function newId(): string {
  return randomUUID().replaceAll("-", "");
}

export function newAuditId(): string {
  return randomBytes(16).toString("base64url");
}

/** Keystone's time format: ISO 8601 with microseconds, UTC. */
export function isoTime(d: Date): string {
  return d.toISOString().replace(/Z$/, "000Z");
}
