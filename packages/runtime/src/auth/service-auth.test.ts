// The settings choose the mode: Keystone when KEYSTONE_URL and its service user are set (the user
// must be the service's own, stratus-<service>), else Stratus's identity with the service's
// password file, which must be given and readable.
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { ConfigError, commonConfig, parseConfig } from "../config.js";
import { serviceAuthConfig, serviceAuthMode } from "./service-auth.js";

const shape = { ...commonConfig, ...serviceAuthConfig };
const mode = (env: Record<string, string>) => serviceAuthMode(parseConfig(shape, env), "conductor");

const dir = mkdtempSync(join(tmpdir(), "stratus-service-auth-"));
const passwordFile = join(dir, "conductor.password");
writeFileSync(passwordFile, "s3cret\n");

const keystone = {
  KEYSTONE_URL: "http://keystone.example:5000",
  KEYSTONE_SERVICE_PASSWORD: "pw",
  KEYSTONE_SERVICE_PROJECT: "service",
};

describe("serviceAuthMode", () => {
  it("is the built-in identity with the service's password file, at the identity's default URLs", () => {
    expect(mode({ SERVICE_PASSWORD_FILE: passwordFile })).toEqual({
      mode: "identity",
      identityUrl: "http://127.0.0.1:5000",
      identityRpcUrl: "http://127.0.0.1:9105",
      passwordFile,
    });
  });

  it("needs the password file in the built-in mode, and one that holds a password", () => {
    expect(() => mode({})).toThrow(ConfigError);
    expect(() => mode({})).toThrow("SERVICE_PASSWORD_FILE");
    const empty = join(dir, "empty.password");
    writeFileSync(empty, "\n");
    expect(() => mode({ SERVICE_PASSWORD_FILE: empty })).toThrow("holds no password");
    expect(() => mode({ SERVICE_PASSWORD_FILE: join(dir, "missing") })).toThrow("SERVICE_PASSWORD_FILE");
  });

  it("is Keystone with the service's own service user, and refuses another user", () => {
    const chosen = mode({ ...keystone, KEYSTONE_SERVICE_USER: "stratus-conductor" });
    expect(chosen.mode).toBe("keystone");
    expect(() => mode({ ...keystone, KEYSTONE_SERVICE_USER: "nova" })).toThrow("must be stratus-conductor");
  });
});
