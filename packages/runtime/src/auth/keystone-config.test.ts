import { describe, expect, it } from "vitest";
import { ConfigError, commonConfig, describeConfig, parseConfig } from "../config.js";
import { keystoneConfig, keystoneValidatorOptions } from "./keystone-config.js";

// As a service declares it: its own shape with the Keystone variables spread in.
const shape = { ...commonConfig, ...keystoneConfig };
const options = (env: Record<string, string>) => keystoneValidatorOptions(parseConfig(shape, env));

const complete = {
  KEYSTONE_URL: "http://keystone.example:5000",
  KEYSTONE_SERVICE_USER: "stratus",
  KEYSTONE_SERVICE_PASSWORD: "pw",
  KEYSTONE_SERVICE_PROJECT: "service",
};

describe("Keystone configuration", () => {
  it("is off when no Keystone variable is set", () => {
    expect(options({})).toBeUndefined();
  });

  it("gives the validator's options, with the defaults, from the four required values", () => {
    expect(options(complete)).toEqual({
      url: "http://keystone.example:5000/v3",
      serviceUser: { name: "stratus", password: "pw", domainName: "Default" },
      serviceProject: { name: "service", domainName: "Default" },
      cacheTtlMs: 5_000,
      cacheMaxEntries: 10_000,
      timeoutMs: 5_000,
    });
  });

  it("takes the URL with or without /v3, and the domains, TTL and limits as given", () => {
    const o = options({
      ...complete,
      KEYSTONE_URL: "https://id.example/identity/v3/",
      KEYSTONE_SERVICE_USER_DOMAIN_NAME: "services",
      KEYSTONE_SERVICE_PROJECT_DOMAIN_NAME: "infra",
      KEYSTONE_CACHE_TTL_S: "0.5",
      KEYSTONE_CACHE_MAX_ENTRIES: "50",
      KEYSTONE_TIMEOUT_MS: "800",
    });
    expect(o).toMatchObject({
      url: "https://id.example/identity/v3",
      serviceUser: { domainName: "services" },
      serviceProject: { domainName: "infra" },
      cacheTtlMs: 500,
      cacheMaxEntries: 50,
      timeoutMs: 800,
    });
  });

  it("names the required values missing when only some are set", () => {
    const partial = { KEYSTONE_URL: complete.KEYSTONE_URL, KEYSTONE_SERVICE_USER: "stratus" };
    expect(() => options(partial)).toThrow(ConfigError);
    expect(() => options(partial)).toThrow(
      /KEYSTONE_SERVICE_PASSWORD="": required with KEYSTONE_URL, KEYSTONE_SERVICE_USER\n {2}KEYSTONE_SERVICE_PROJECT=""/,
    );
    expect(() => options({ KEYSTONE_SERVICE_PASSWORD: "pw" })).toThrow(/KEYSTONE_URL=""/);
  });

  it("refuses a URL that is not one and a TTL out of range", () => {
    expect(() => parseConfig(shape, { ...complete, KEYSTONE_URL: "keystone:5000" })).toThrow(/KEYSTONE_URL=/);
    expect(() => parseConfig(shape, { ...complete, KEYSTONE_CACHE_TTL_S: "-1" })).toThrow(
      /KEYSTONE_CACHE_TTL_S=/,
    );
  });

  it("describes every variable for --help", () => {
    const help = describeConfig("svc", shape);
    for (const name of Object.keys(keystoneConfig)) expect(help).toContain(name);
    expect(help).toMatch(/KEYSTONE_CACHE_TTL_S\s+.*default 5/);
  });
});
