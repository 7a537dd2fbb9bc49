import { randomUUID } from "node:crypto";
import { base64url, exportJWK, generateKeyPair, SignJWT } from "jose";
import { describe, expect, it } from "vitest";
import { isStratusError } from "../errors.js";
import type { AuthenticatedIdentity } from "./identity.js";
import {
  LocalTokenValidator,
  type PublicSigningKey,
  type RevocationListener,
  type TokenKeySource,
} from "./local-validator.js";
import type { Revocation } from "./revocations.js";
import { claimsFor } from "./token-claims.js";

type KeyPair = Awaited<ReturnType<typeof generateKeyPair>>;

async function newKey(kid: string): Promise<{ kid: string; pair: KeyPair; jwk: PublicSigningKey }> {
  const pair = await generateKeyPair("ES256", { extractable: true });
  const jwk = await exportJWK(pair.publicKey);
  return { kid, pair, jwk: { kid, alg: "ES256", kty: "EC", crv: "P-256", x: jwk.x!, y: jwk.y! } };
}

/** The identity service as seen by a validator, in memory; counts key fetches. */
class FakeSource implements TokenKeySource {
  keys: PublicSigningKey[] = [];
  revoked: Revocation[] = [];
  keyFetches = 0;
  failRevocations = false;
  listener: RevocationListener | undefined;
  async signingKeys() {
    this.keyFetches++;
    return { keys: [...this.keys], tokenTtlSeconds: 3600 };
  }
  async revocations() {
    if (this.failRevocations) throw new Error("identity unreachable");
    return [...this.revoked];
  }
  async watchRevocations(listener: RevocationListener) {
    this.listener = listener;
    return () => {
      this.listener = undefined;
    };
  }
  publish(r: Revocation) {
    this.revoked.push(r);
    this.listener?.revoked(r);
  }
}

const T0 = Date.parse("2030-01-01T00:00:00.000Z");

function identity(over: Partial<AuthenticatedIdentity> = {}): AuthenticatedIdentity {
  return {
    userId: "u1",
    userName: "alice",
    userDomainId: "default",
    projectId: "p1",
    projectName: "demo",
    projectDomainId: "dom-p",
    domainId: "",
    system: false,
    roles: ["member", "reader"],
    issuedAt: new Date(T0 + 500),
    expiresAt: new Date(T0 + 3600_000),
    auditIds: ["audit-1"],
    methods: ["password"],
    ...over,
  };
}

async function sign(
  key: { kid: string; pair: KeyPair },
  claims: Record<string, unknown>,
  header: Record<string, unknown> = {},
) {
  return new SignJWT(claims)
    .setProtectedHeader({ alg: "ES256", kid: key.kid, ...header })
    .sign(key.pair.privateKey);
}

function revocation(fields: Partial<Revocation>): Revocation {
  return {
    id: randomUUID(),
    auditId: "",
    userId: "",
    projectId: "",
    domainId: "",
    system: false,
    applicationCredentialId: "",
    issuedBefore: new Date(T0 + 1000),
    revokedAt: new Date(T0 + 1000),
    ...fields,
  };
}

async function setup(options: { cacheSize?: number } = {}) {
  const key = await newKey("k1");
  const source = new FakeSource();
  source.keys = [key.jwk];
  let now = T0 + 2000;
  const clock = {
    set: (t: number) => {
      now = t;
    },
  };
  const validator = new LocalTokenValidator(source, {
    now: () => now,
    keyRefreshIntervalMs: 1000,
    ...options,
  });
  await validator.start();
  return { key, source, validator, clock };
}

async function refusal(p: Promise<unknown>): Promise<string> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  if (!isStratusError(err)) throw new Error(`expected a StratusError, got ${String(err)}`);
  return err.kind;
}

describe("LocalTokenValidator", () => {
  it("accepts a token signed with the identity's key and returns what it carries", async () => {
    const { key, validator } = await setup();
    const token = await sign(key, { ...claimsFor(identity({ applicationCredentialId: "ac1" })) });
    const got = await validator.validate(token);
    expect(got).toEqual(identity({ applicationCredentialId: "ac1" }));
    // Kept: the second answer is the same verified identity.
    expect(await validator.validate(token)).toBe(got);
  });

  it("refuses a token signed with another key under the right kid", async () => {
    const { validator } = await setup();
    const impostor = await newKey("k1");
    expect(await refusal(validator.validate(await sign(impostor, { ...claimsFor(identity()) })))).toBe(
      "unauthorized",
    );
  });

  it("refuses a token whose payload was changed after signing", async () => {
    const { key, validator } = await setup();
    const [h, , s] = (await sign(key, { ...claimsFor(identity()) })).split(".");
    const admin = base64url.encode(JSON.stringify(claimsFor(identity({ roles: ["admin"] }))));
    expect(await refusal(validator.validate(`${h}.${admin}.${s}`))).toBe("unauthorized");
  });

  it("refuses alg none and a token MACed with the public key (algorithm confusion)", async () => {
    const { key, validator } = await setup();
    const payload = base64url.encode(JSON.stringify(claimsFor(identity())));
    const none = `${base64url.encode(JSON.stringify({ alg: "none", kid: "k1" }))}.${payload}.`;
    expect(await refusal(validator.validate(none))).toBe("unauthorized");
    const secret = new TextEncoder().encode(JSON.stringify(key.jwk));
    const hs = await new SignJWT({ ...claimsFor(identity()) })
      .setProtectedHeader({ alg: "HS256", kid: "k1" })
      .sign(secret);
    expect(await refusal(validator.validate(hs))).toBe("unauthorized");
  });

  it("refuses malformed tokens and signed payloads that are not a token's claims", async () => {
    const { key, validator } = await setup();
    for (const bad of ["", "abc", "a.b.c", "x".repeat(9000), "admin:admin"]) {
      expect(await refusal(validator.validate(bad))).toBe("unauthorized");
    }
    const { openstack_audit_ids: _, ...noAudit } = claimsFor(identity());
    expect(await refusal(validator.validate(await sign(key, noAudit)))).toBe("unauthorized");
    const twoScopes = { ...claimsFor(identity()), openstack_system: "all" };
    expect(await refusal(validator.validate(await sign(key, twoScopes)))).toBe("unauthorized");
    const badRoles = { ...claimsFor(identity()), openstack_roles: "admin" };
    expect(await refusal(validator.validate(await sign(key, badRoles)))).toBe("unauthorized");
  });

  it("refuses an expired token, also one it had accepted before", async () => {
    const { key, validator, clock } = await setup();
    const short = await sign(key, { ...claimsFor(identity({ expiresAt: new Date(T0 + 10_000) })) });
    await validator.validate(short);
    clock.set(T0 + 10_000);
    expect(await refusal(validator.validate(short))).toBe("unauthorized");
    const fresh = await setup();
    fresh.clock.set(T0 + 20_000);
    const expired = await sign(fresh.key, { ...claimsFor(identity({ expiresAt: new Date(T0 + 10_000) })) });
    expect(await refusal(fresh.validator.validate(expired))).toBe("unauthorized");
  });

  it("asks for the keys again on an unknown kid (rotation), at most once per interval", async () => {
    const { source, validator } = await setup();
    expect(source.keyFetches).toBe(1);
    // A key rotated in just after the validator's last fetch: the token waits for the interval's
    // end and the next fetch, and is accepted (not refused as signed by an unknown key).
    const next = await newKey("k2");
    source.keys.push(next.jwk);
    const token = await sign(next, { ...claimsFor(identity()) });
    const started = performance.now();
    expect((await validator.validate(token)).userId).toBe("u1");
    expect(performance.now() - started).toBeGreaterThan(900);
    expect(source.keyFetches).toBe(2);
    // Tokens of a key the identity does not have: refused after one more fetch, shared by both.
    const stranger = await sign(await newKey("k3"), { ...claimsFor(identity()) });
    expect(
      await Promise.all([refusal(validator.validate(stranger)), refusal(validator.validate(stranger))]),
    ).toEqual(["unauthorized", "unauthorized"]);
    expect(source.keyFetches).toBe(3);
  });

  const kinds: [string, Partial<Revocation>, Partial<AuthenticatedIdentity>][] = [
    ["token deleted (audit id)", { auditId: "audit-1" }, { auditIds: ["audit-2"] }],
    ["user disabled, deleted or password changed", { userId: "u1" }, { userId: "u2" }],
    ["role removed on the project", { userId: "u1", projectId: "p1" }, { projectId: "p2" }],
    ["project disabled or deleted", { projectId: "p1" }, { projectId: "p2" }],
    ["domain disabled (the project's domain)", { domainId: "dom-p" }, { projectDomainId: "dom-q" }],
    [
      "application credential deleted",
      { applicationCredentialId: "ac1" },
      { applicationCredentialId: "ac2" },
    ],
  ];
  for (const [kind, fields, other] of kinds) {
    it(`refuses a token revoked by event: ${kind}; not a token it does not match`, async () => {
      const { key, source, validator } = await setup();
      const base = { applicationCredentialId: "ac1" };
      const token = await sign(key, { ...claimsFor(identity(base)) });
      const unrelated = await sign(key, { ...claimsFor(identity({ ...base, ...other })) });
      const later = await sign(key, { ...claimsFor(identity({ ...base, issuedAt: new Date(T0 + 1500) })) });
      await validator.validate(token);
      source.publish(revocation(fields));
      expect(await refusal(validator.validate(token))).toBe("unauthorized");
      expect((await validator.validate(unrelated)).userId).toBeTruthy();
      expect((await validator.validate(later)).userId).toBe("u1");
    });
  }

  it("refuses system-scoped tokens of a user whose system role was removed, and domain-scoped ones", async () => {
    const { key, source, validator } = await setup();
    const system = await sign(key, {
      ...claimsFor(identity({ projectId: "", projectName: "", projectDomainId: "", system: true })),
    });
    const project = await sign(key, { ...claimsFor(identity()) });
    const domainScoped = await sign(key, {
      ...claimsFor(identity({ projectId: "", projectName: "", projectDomainId: "", domainId: "d9" })),
    });
    source.publish(revocation({ userId: "u1", system: true }));
    source.publish(revocation({ userId: "u1", domainId: "d9" }));
    expect(await refusal(validator.validate(system))).toBe("unauthorized");
    expect(await refusal(validator.validate(domainScoped))).toBe("unauthorized");
    expect((await validator.validate(project)).projectId).toBe("p1");
  });

  it("refuses tokens revoked before it started (the list loaded over RPC)", async () => {
    const key = await newKey("k1");
    const source = new FakeSource();
    source.keys = [key.jwk];
    source.revoked = [revocation({ userId: "u1" })];
    const validator = new LocalTokenValidator(source, { now: () => T0 + 2000 });
    await validator.start();
    expect(await refusal(validator.validate(await sign(key, { ...claimsFor(identity()) })))).toBe(
      "unauthorized",
    );
  });

  it("takes a revocation whose event never came at its next reload of the list", async () => {
    const key = await newKey("k1");
    const source = new FakeSource();
    source.keys = [key.jwk];
    const validator = new LocalTokenValidator(source, { now: () => T0 + 2000, revocationReloadMs: 200 });
    await validator.start();
    const token = await sign(key, { ...claimsFor(identity()) });
    expect((await validator.validate(token)).userId).toBe("u1");
    // Revoked at the identity; the event is lost on its way (no listener told).
    source.revoked.push(revocation({ userId: "u1" }));
    expect((await validator.validate(token)).userId).toBe("u1");
    await new Promise((r) => setTimeout(r, 500));
    expect(await refusal(validator.validate(token))).toBe("unauthorized");
    await validator.close();
  });

  it("fails closed: refuses every token while the revocations are not known", async () => {
    const key = await newKey("k1");
    const source = new FakeSource();
    source.keys = [key.jwk];
    source.failRevocations = true;
    const validator = new LocalTokenValidator(source, { now: () => T0 + 2000, retryMs: 10 });
    const started = validator.start();
    const token = await sign(key, { ...claimsFor(identity()) });
    await new Promise((r) => setTimeout(r, 30));
    expect(await refusal(validator.validate(token))).toBe("unavailable");
    source.failRevocations = false;
    await started;
    expect((await validator.validate(token)).userId).toBe("u1");
    // Events may be missed while the connection is down: refused until the list is loaded again.
    source.listener!.lost();
    expect(await refusal(validator.validate(token))).toBe("unavailable");
    source.revoked.push(revocation({ userId: "u1" }));
    source.listener!.resumed();
    await new Promise((r) => setTimeout(r, 10));
    expect(await refusal(validator.validate(token))).toBe("unauthorized");
    await validator.close();
  });
});
