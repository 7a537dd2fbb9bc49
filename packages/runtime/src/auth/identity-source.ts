// The identity service as a LocalTokenValidator's source: keys and revocations over the
// IdentityService RPC, later revocations from stratus.identity.revoked events; a dropped NATS
// connection means events may be missed until the list is loaded again.
import type { MessageInitShape } from "@bufbuild/protobuf";
import { timestampDate, timestampFromDate } from "@bufbuild/protobuf/wkt";
import { type TokenRevoked, TokenRevokedSchema } from "@stratus/contracts/events/v1";
import { IdentityService } from "@stratus/contracts/identity/v1";
import type { EventBus } from "../nats.js";
import { Subjects } from "../nats-subjects.js";
import { serviceClient } from "../rpc/client.js";
import type { RevocationListener, TokenKeySource } from "./local-validator.js";
import type { Revocation } from "./revocations.js";

export function revocationFromEvent(e: TokenRevoked): Revocation {
  return {
    id: e.id,
    auditId: e.auditId,
    userId: e.userId,
    projectId: e.projectId,
    domainId: e.domainId,
    system: e.system,
    applicationCredentialId: e.applicationCredentialId,
    issuedBefore: e.issuedBefore ? timestampDate(e.issuedBefore) : new Date(0),
    revokedAt: e.revokedAt ? timestampDate(e.revokedAt) : new Date(0),
  };
}

export function revocationToEvent(r: Revocation): MessageInitShape<typeof TokenRevokedSchema> {
  return {
    id: r.id,
    auditId: r.auditId,
    userId: r.userId,
    projectId: r.projectId,
    domainId: r.domainId,
    system: r.system,
    applicationCredentialId: r.applicationCredentialId,
    issuedBefore: timestampFromDate(r.issuedBefore),
    revokedAt: timestampFromDate(r.revokedAt),
  };
}

/**
 * Follows stratus.identity.revoked; a dropped connection is reported as lost, its return as
 * resumed. Resolves once the subscription is in place on the server.
 */
export async function watchRevocationEvents(
  bus: EventBus,
  listener: RevocationListener,
): Promise<() => void> {
  const sub = bus.subscribe(Subjects.identityRevoked, TokenRevokedSchema, (e) =>
    listener.revoked(revocationFromEvent(e)),
  );
  await bus.nc.flush();
  let stopped = false;
  void (async () => {
    for await (const s of bus.nc.status()) {
      if (stopped) break;
      if (s.type === "disconnect") listener.lost();
      else if (s.type === "reconnect") listener.resumed();
    }
  })();
  return () => {
    stopped = true;
    sub.unsubscribe();
  };
}

/** Keys and revocations from the identity service at `identityUrl`, events through `bus`. */
export function identityServiceSource(identityUrl: string, bus: EventBus): TokenKeySource {
  const client = serviceClient(IdentityService, identityUrl);
  return {
    async signingKeys() {
      const res = await client.listSigningKeys({});
      return {
        keys: res.keys.map((k) => ({ kid: k.kid, alg: k.alg, kty: k.kty, crv: k.crv, x: k.x, y: k.y })),
        tokenTtlSeconds: Number(res.tokenTtlSeconds),
      };
    },
    async revocations() {
      return (await client.listRevocations({})).revocations.map(revocationFromEvent);
    },
    watchRevocations: (listener) => watchRevocationEvents(bus, listener),
  };
}
