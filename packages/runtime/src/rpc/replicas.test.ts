// serviceClient over a peer's replicas (comma-separated URLs): a call that could not reach one
// goes to the next; a call that reached one and failed does not; both transports (the short
// client and connect-es).
import { PlacementService } from "@stratus/contracts/scheduler/v1/placement";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { StratusError } from "../errors.js";
import { freePort } from "../testing/nats-server.js";
import { startTestRpcServer } from "../testing/rpc.js";
import { bindService } from "./binding.js";
import { neverSent, serviceClient } from "./client.js";
import type { RpcServer } from "./server.js";

const UUID = "7c0a5d1e-2b7f-4d0e-9a51-3f0c2e1b9d44";

/** A replica that answers with its name, or refuses every call as unavailable. */
async function replica(name: string, refuse = false) {
  const calls: string[] = [];
  const server = await startTestRpcServer([
    bindService(PlacementService, {
      getResourceProvider: (req) => {
        calls.push(req.uuid);
        if (refuse) throw new StratusError("unavailable", `${name} is draining`);
        return { provider: { uuid: req.uuid, name, generation: 1n } };
      },
    }),
  ]);
  return { server, calls };
}

/** What a call failed with (undefined if it did not fail). */
const failureOf = (call: Promise<unknown>) =>
  call.then(
    () => undefined,
    (e: unknown) => e,
  );

const servers: RpcServer[] = [];
/** A URL nothing listens on (connections to it are refused), new for each test. */
const deadUrl = async () => `http://127.0.0.1:${await freePort()}`;
afterAll(async () => {
  await Promise.all(servers.map((s) => s.close().catch(() => undefined)));
});

const saved = process.env.STRATUS_RPC_FAST;
afterEach(() => {
  if (saved === undefined) delete process.env.STRATUS_RPC_FAST;
  else process.env.STRATUS_RPC_FAST = saved;
});

describe.each(["1", "0"])("serviceClient over replicas (STRATUS_RPC_FAST=%s)", (fast) => {
  it("prefers the first replica; a call that cannot reach it goes to the next", async () => {
    process.env.STRATUS_RPC_FAST = fast;
    const a = await replica("a");
    const b = await replica("b");
    servers.push(a.server, b.server);
    const both = serviceClient(PlacementService, `${a.server.url}, ${b.server.url}`);
    expect((await both.getResourceProvider({ uuid: UUID })).provider?.name).toBe("a");
    expect(b.calls).toHaveLength(0);
    const deadFirst = serviceClient(PlacementService, `${await deadUrl()},${b.server.url}`);
    expect((await deadFirst.getResourceProvider({ uuid: UUID })).provider?.name).toBe("b");
    // The preferred replica goes away: the next call goes to the other one.
    await a.server.close();
    expect((await both.getResourceProvider({ uuid: UUID })).provider?.name).toBe("b");
  });

  it("does not send a call again that reached a replica and failed there", async () => {
    process.env.STRATUS_RPC_FAST = fast;
    const a = await replica("a", true);
    const b = await replica("b");
    servers.push(a.server, b.server);
    const err = await failureOf(
      serviceClient(PlacementService, `${a.server.url},${b.server.url}`).getResourceProvider({ uuid: UUID }),
    );
    expect(err).toBeInstanceOf(StratusError);
    expect((err as StratusError).kind).toBe("unavailable");
    expect(neverSent(err)).toBe(false);
    expect(a.calls).toHaveLength(1);
    expect(b.calls).toHaveLength(0);
  });

  it("fails as unreachable when no replica can be reached", async () => {
    process.env.STRATUS_RPC_FAST = fast;
    const err = await failureOf(
      serviceClient(PlacementService, `${await deadUrl()},${await deadUrl()}`).getResourceProvider({
        uuid: UUID,
      }),
    );
    expect((err as StratusError).kind).toBe("unavailable");
    expect(neverSent(err)).toBe(true);
  });
});
