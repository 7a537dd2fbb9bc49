// Key rotation: a new key signs, the retired one still verifies until the last token it signed
// has expired, then it is no longer published and is deleted; the private part is never published.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createLogger, type Database, migrationsFrom, openDatabase } from "@stratus/runtime";
import { decodeProtectedHeader, importJWK, jwtVerify } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SigningKeys } from "./signing-keys.js";

let db: Database;
const dataDir = mkdtempSync(join(tmpdir(), "stratus-identity-keys-"));
beforeAll(async () => {
  db = await openDatabase({
    service: "identity",
    dataDir,
    migrations: migrationsFrom(new URL("../../migrations", import.meta.url).pathname),
    logger: createLogger("test", "silent"),
  });
});
afterAll(async () => {
  await db?.close();
  rmSync(dataDir, { recursive: true, force: true });
});

const claims = (n: number) => ({
  sub: "u",
  iat: n,
  exp: n + 60,
  openstack_methods: ["password"],
  openstack_audit_ids: ["a"],
  openstack_user_name: "u",
  openstack_user_domain_id: "default",
  openstack_roles: [],
  openstack_issued_at_ms: n * 1000,
});

describe("SigningKeys", () => {
  it("rotates: the new key signs, the old one is published until its tokens expired", async () => {
    let now = Date.parse("2030-01-01T00:00:00Z");
    const keys = new SigningKeys(db, {
      tokenTtlMs: 3600_000,
      rotationMs: 86_400_000,
      reloadMs: 0,
      now: () => now,
    });
    await keys.ensure();
    const first = await keys.published();
    expect(first).toHaveLength(1);
    expect(JSON.stringify(first)).not.toMatch(/PRIVATE|"d"/);
    const oldToken = await keys.sign(claims(now / 1000));
    expect(decodeProtectedHeader(oldToken)).toMatchObject({ alg: "ES256", kid: first[0]!.kid });

    // Not old enough: ensure() keeps it.
    now += 3600_000;
    await keys.ensure();
    expect((await keys.published()).map((k) => k.kid)).toEqual([first[0]!.kid]);

    now += 86_400_000;
    await keys.ensure();
    const both = await keys.published();
    expect(both).toHaveLength(2);
    const [current, retired] = both;
    expect(retired!.kid).toBe(first[0]!.kid);
    expect(retired!.retiredAt).toBeDefined();
    const newToken = await keys.sign(claims(now / 1000));
    expect(decodeProtectedHeader(newToken).kid).toBe(current!.kid);
    const verifyWith = async (token: string, k: (typeof both)[number]) =>
      jwtVerify(token, await importJWK({ kty: k.kty, crv: k.crv, x: k.x, y: k.y }, "ES256"), {
        currentDate: new Date(0),
      });
    await expect(verifyWith(oldToken, retired!)).resolves.toBeTruthy();
    await expect(verifyWith(newToken, current!)).resolves.toBeTruthy();
    await expect(verifyWith(newToken, retired!)).rejects.toThrow();

    // A token lifetime after retirement the old key is gone.
    now += 3600_000 + 1;
    await keys.ensure();
    expect((await keys.published()).map((k) => k.kid)).toEqual([current!.kid]);
    const rows = await db.query("SELECT kid FROM signing_keys");
    expect(rows).toHaveLength(1);
  });

  it("makes one key when replicas rotate at once", async () => {
    await db.query("DELETE FROM signing_keys");
    const a = new SigningKeys(db, { tokenTtlMs: 3600_000, rotationMs: 0 });
    const b = new SigningKeys(db, { tokenTtlMs: 3600_000, rotationMs: 0 });
    const made = await Promise.all([a.rotate(undefined), b.rotate(undefined)]);
    expect(made[0]).toBe(made[1]);
    expect(await db.query("SELECT kid FROM signing_keys WHERE retired_at IS NULL")).toHaveLength(1);
  });
});
