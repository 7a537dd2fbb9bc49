// A test's service must be its own: ports handed out to one vitest worker never go to another,
// and waiting for a service counts only the answer of the process that was started.
import net from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RpcServer } from "../rpc/server.js";
import { freePort } from "./nats-server.js";
import { waitForServing } from "./processes.js";
import { startTestRpcServer } from "./rpc.js";

describe("freePort", () => {
  it("hands out distinct ports from this worker's block, skipping taken ones", async () => {
    const pool = Number(process.env.VITEST_POOL_ID) + Number(process.env.STRATUS_TEST_PORT_BLOCKS ?? 0);
    const base = 20_000 + (pool - 1) * 1000;
    const first = await freePort();
    // Hold the next ports the way a started service would: they must not be handed out again.
    const held: net.Server[] = [];
    const ports = [first];
    for (let i = 0; i < 5; i++) {
      const p = await freePort();
      const srv = net.createServer();
      await new Promise<void>((r) => srv.listen(p, "127.0.0.1", () => r()));
      held.push(srv);
      ports.push(p);
    }
    try {
      for (const p of ports) {
        expect(p).toBeGreaterThanOrEqual(base);
        expect(p).toBeLessThan(base + 1000);
      }
      expect(new Set(ports).size).toBe(ports.length);
      for (let i = 0; i < 1200; i++)
        expect(held.map((s) => (s.address() as net.AddressInfo).port)).not.toContain(await freePort());
    } finally {
      for (const s of held) s.close();
    }
  });
});

describe("waitForServing", () => {
  let server: RpcServer;
  beforeAll(async () => {
    server = await startTestRpcServer([]);
  });
  afterAll(() => server?.close());

  it("accepts the answer of the process it started", async () => {
    await waitForServing(server.url, 5000, undefined, process.pid);
  });

  it("refuses a stranger holding the port", async () => {
    await expect(waitForServing(server.url, 1500, undefined, process.pid + 1)).rejects.toThrow(
      `not ours (${process.pid + 1})`,
    );
  });
});
