import { describe, expect, it } from "vitest";
import { z } from "zod";
import { ConfigError, commonConfig, describeConfig, parseConfig, port } from "./config.js";

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
});
