// The pipeline's not-after stage (pipeline.ts, stage 4b): a call whose `stratus-not-after` has
// passed when it reaches its handler is refused as unavailable and its handler does not run; a
// call in time, or without the header, runs. Both transports, as serviceClient sends it from a
// context's `notAfter`.
import { PlacementService } from "@stratus/contracts/scheduler/v1/placement";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { anonymousContext, NOT_AFTER_HEADER, newRequestId, runWithContext } from "../context.js";
import { StratusError } from "../errors.js";
import { curlCall, startTestRpcServer } from "../testing/rpc.js";
import { bindService } from "./binding.js";
import { serviceClient } from "./client.js";
import type { RpcServer } from "./server.js";

const UUID = "7c0a5d1e-2b7f-4d0e-9a51-3f0c2e1b9d44";
/** The not-after header each call that reached the handler carried ("" without one). */
const handled: string[] = [];
let server: RpcServer;
beforeAll(async () => {
  server = await startTestRpcServer([
    bindService(PlacementService, {
      getResourceProvider: (req, ctx) => {
        handled.push(ctx.requestHeader.get(NOT_AFTER_HEADER) ?? "");
        return { provider: { uuid: req.uuid, name: "n", generation: 1n } };
      },
    }),
  ]);
});
afterAll(async () => {
  await server?.close();
});

const saved = process.env.STRATUS_RPC_FAST;
afterEach(() => {
  if (saved === undefined) delete process.env.STRATUS_RPC_FAST;
  else process.env.STRATUS_RPC_FAST = saved;
});

/** A call made in a context whose calls must start by `notAfter` (none: no header). */
async function callWith(url: string, notAfter: number | undefined): Promise<string> {
  const ctx = { ...anonymousContext(newRequestId()), ...(notAfter === undefined ? {} : { notAfter }) };
  return runWithContext(ctx, () =>
    serviceClient(PlacementService, url).getResourceProvider({ uuid: UUID }),
  ).then(
    () => "ok",
    (err: unknown) => (err instanceof StratusError ? err.kind : String(err)),
  );
}

describe.each(["1", "0"])("stratus-not-after (STRATUS_RPC_FAST=%s)", (fast) => {
  // One transport per URL and process: another name of the server per transport.
  const url = () => (fast === "1" ? server.url : server.url.replace("127.0.0.1", "localhost"));

  it("runs a call in time and one without the header; refuses a late one before its handler", async () => {
    process.env.STRATUS_RPC_FAST = fast;
    handled.length = 0;
    const inTime = Date.now() + 60_000;
    expect(await callWith(url(), inTime)).toBe("ok");
    expect(await callWith(url(), undefined)).toBe("ok");
    expect(handled).toEqual([String(inTime), ""]);
    expect(await callWith(url(), Date.now() - 1)).toBe("unavailable");
    expect(handled).toHaveLength(2);
  });
});

describe("a malformed stratus-not-after", () => {
  it("is refused as invalid input, its handler not run", async () => {
    handled.length = 0;
    const { body } = await curlCall(
      `${server.url}/stratus.scheduler.v1.PlacementService/GetResourceProvider`,
      { uuid: UUID },
      ["--http2-prior-knowledge", "-H", `${NOT_AFTER_HEADER}: soon`],
    );
    expect(body).toMatchObject({ code: "invalid_argument" });
    expect(handled).toHaveLength(0);
  });
});
