// A host's compute-node resource provider uuid: a UUIDv5 of its name, so a simulated host keeps
// the same provider across agent restarts without the agent keeping a database.
import { createHash } from "node:crypto";

/** Namespace for compute-node names (a fixed random UUID of ours). */
const NAMESPACE = "8a1f6c1e-3c1b-4f3e-9a53-5d7c0c2b9e41";

function uuidv5(name: string, namespace: string): string {
  const ns = Buffer.from(namespace.replace(/-/g, ""), "hex");
  const hash = createHash("sha1").update(ns).update(name, "utf8").digest();
  hash[6] = (hash[6]! & 0x0f) | 0x50;
  hash[8] = (hash[8]! & 0x3f) | 0x80;
  const hex = hash.subarray(0, 16).toString("hex");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

export function computeNodeUuid(host: string): string {
  return uuidv5(host, NAMESPACE);
}
