import { describe, expect, it } from "vitest";
import { z } from "zod";
import {
  ConfigError,
  commonConfig,
  DATABASE_POOLS,
  describeConfig,
  parseConfig,
  port,
  storageConfig,
  storageSettings,
} from "./config.js";

const shape = {
  ...commonConfig,
  PORT: port(9000).describe("RPC port"),
  RATIO: z.coerce.number().positive().describe("A ratio"),
};

describe("config", () => {
  it("applies defaults and coerces", () => {
    const c = parseConfig(shape, { RATIO: "1.5" });
    expect(c).toMatchObject({ PORT: 9000, RATIO: 1.5, NATS_URL: "nats://127.0.0.1:4222" });
  });

  it("names every bad variable", () => {
    expect(() => parseConfig(shape, { PORT: "99999", LOG_LEVEL: "loud" })).toThrow(ConfigError);
    try {
      parseConfig(shape, { PORT: "99999", LOG_LEVEL: "loud" });
    } catch (err) {
      const text = (err as Error).message;
      expect(text).toContain('PORT="99999"');
      expect(text).toContain('LOG_LEVEL="loud"');
      expect(text).toContain('RATIO=""');
    }
  });

  it("describes variables for --help", () => {
    const help = describeConfig("svc", shape);
    expect(help).toMatch(/PORT\s+RPC port default 9000/);
    expect(help).toMatch(/RATIO\s+A ratio \(required\)/);
  });

  it("declares the RPC and storage settings, with a service's own defaults where it has them", () => {
    const all = { ...commonConfig, ...storageConfig };
    expect(parseConfig(all, {})).toMatchObject({
      STRATUS_RPC_FAST: "1",
      RPC_TIMEOUT_MS: 30_000,
      RPC_READ_MAX_BYTES: 4 * 1024 * 1024,
      DB_POOL_SIZE: 2,
      DB_GENERIC_POOL_SIZE: 0,
      DB_POOL_WAIT_MS: 5000,
      DB_PREPARED_STATEMENTS: 1000,
      DB_STATISTICS_MS: 10_000,
      DB_ANALYZE_GROWTH: 0,
    });
    expect(parseConfig(all, {}).STRATUS_EXIT_WITH_PARENT).toBeUndefined();
    const scheduler = storageSettings({ service: "scheduler", statisticsMs: 1000, analyzeGrowth: 2 });
    expect(parseConfig(scheduler, {})).toMatchObject({
      DB_STATISTICS_MS: 1000,
      DB_ANALYZE_GROWTH: 2,
      DB_POOL_SIZE: DATABASE_POOLS.scheduler.pool,
      DB_GENERIC_POOL_SIZE: DATABASE_POOLS.scheduler.generic,
    });
    expect(parseConfig(scheduler, { DB_STATISTICS_MS: "0" }).DB_STATISTICS_MS).toBe(0);
    expect(() => parseConfig(all, { STRATUS_RPC_FAST: "yes" })).toThrow(/STRATUS_RPC_FAST="yes"/);
    const help = describeConfig("svc", all);
    for (const name of Object.keys(all)) expect(help).toContain(name);
  });

  it("sizes the default pools so that two replicas of every service and two agents fit PostgreSQL's default 100 connections", () => {
    // max_connections 100, superuser_reserved_connections 3.
    const perReplica = Object.values(DATABASE_POOLS).reduce((n, p) => n + p.pool + p.generic, 0);
    expect(2 * perReplica).toBeLessThanOrEqual(100 - 3);
    for (const service of Object.keys(DATABASE_POOLS) as (keyof typeof DATABASE_POOLS)[]) {
      const parsed = parseConfig(storageSettings({ service }), {});
      expect(parsed.DB_POOL_SIZE + parsed.DB_GENERIC_POOL_SIZE).toBe(
        DATABASE_POOLS[service].pool + DATABASE_POOLS[service].generic,
      );
    }
  });
});
