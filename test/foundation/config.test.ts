// A service given bad configuration exits non-zero and names the variable; --help lists them.
import { spawnService } from "@stratus/runtime/testing";
import { describe, expect, it } from "vitest";

describe("service configuration", () => {
  it("exits 2 naming each bad variable", async () => {
    const p = spawnService("scheduler", { PORT: "not-a-port", NATS_URL: "nats://127.0.0.1:1" });
    expect(await p.exited).toBe(2);
    expect(p.output.join("\n")).toMatch(/PORT="not-a-port"/);
  });

  it("names a bad DATABASE_URL", async () => {
    const p = spawnService("network-adapter", { DATABASE_URL: "mysql://x" });
    expect(await p.exited).toBe(2);
    expect(p.output.join("\n")).toMatch(/DATABASE_URL="mysql:\/\/x": must be a postgres:\/\/ URL/);
  });

  it("names a NATS credential file that is missing or holds no seed", async () => {
    const missing = spawnService("scheduler", { NATS_NKEY_SEED_FILE: "/nonexistent/scheduler.nk" });
    const notASeed = spawnService("scheduler", { NATS_NKEY_SEED_FILE: "package.json" });
    expect(await missing.exited).toBe(2);
    expect(missing.output.join("\n")).toMatch(
      /NATS_NKEY_SEED_FILE="\/nonexistent\/scheduler.nk": cannot read .*ENOENT/,
    );
    expect(await notASeed.exited).toBe(2);
    expect(notASeed.output.join("\n")).toMatch(
      /NATS_NKEY_SEED_FILE="package.json": .* holds no nkey user seed/,
    );
  });

  it("prints every variable with --help", async () => {
    const p = spawnService("compute-agent", {}, ["--help"]);
    expect(await p.exited).toBe(0);
    const out = p.output.join("\n");
    for (const name of ["NATS_URL", "PORT", "COMPUTE_HOSTS", "LOG_LEVEL"]) expect(out).toContain(name);
  });
});
