// What outgoing calls carry: the credential's token, and the acting-for user of the current context
// only when the credential is a service's that may act for users; and a serviceClient call a
// callee refuses as unauthenticated is made again once, after the credential logged in again.
import { PlacementService } from "@stratus/contracts/scheduler/v1/placement";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runWithContext, systemContext, userContext } from "../context.js";
import { isStratusError, StratusError } from "../errors.js";
import { bindService } from "../rpc/binding.js";
import { serviceClient } from "../rpc/client.js";
import type { RpcServer } from "../rpc/server.js";
import { startTestRpcServer } from "../testing/rpc.js";
import {
  type CallerCredential,
  dropCallerCredential,
  useCallerCredential,
  writeCallerHeaders,
} from "./caller-credential.js";
import type { ServicePrincipalName } from "./principal.js";

class FixedCredential implements CallerCredential {
  renewals: (string | undefined)[] = [];
  constructor(
    readonly service: ServicePrincipalName | undefined,
    public current: string | undefined,
    private readonly next?: string,
  ) {}
  token() {
    return this.current;
  }
  async renew(rejected: string | undefined) {
    this.renewals.push(rejected);
    if (this.next) this.current = this.next;
  }
}

function headersOf(credential: CallerCredential | undefined): Record<string, string> {
  const h: Record<string, string> = {};
  writeCallerHeaders({ set: (k, v) => (h[k] = v) }, credential);
  return h;
}

const bob = userContext({ userId: "bob", projectId: "p-b", roles: ["member", "reader"], userName: "Bob" });

describe("the caller's headers", () => {
  it("carry the token, and the user a service allowed to act for users acts for", () => {
    const api = new FixedCredential("api", "t-api");
    expect(runWithContext(bob, () => headersOf(api))).toEqual({
      authorization: "Bearer t-api",
      "x-stratus-user-id": "bob",
      "x-stratus-user-name": "Bob",
      "x-stratus-project-id": "p-b",
      "x-stratus-roles": "member,reader",
    });
    expect(runWithContext(systemContext(), () => headersOf(api))).toEqual({ authorization: "Bearer t-api" });
  });

  it("never assert a user for a service that may not act for users, nor for a user's own credential", () => {
    for (const credential of [
      new FixedCredential("compute-agent", "t"),
      new FixedCredential(undefined, "t"),
    ]) {
      expect(runWithContext(bob, () => headersOf(credential))).toEqual({ authorization: "Bearer t" });
    }
    expect(headersOf(undefined)).toEqual({});
  });
});

describe("a call refused as unauthenticated", () => {
  let server: RpcServer;
  let calls = 0;
  beforeAll(async () => {
    const placement = bindService(PlacementService, {
      getResourceProvider: (req) => {
        calls++;
        return { provider: { uuid: req.uuid, name: "h" } };
      },
    });
    server = await startTestRpcServer([placement], {
      auth: {
        async principalOf(headers) {
          if (headers.get("authorization") !== "Bearer fresh") throw new StratusError("unauthorized", "no");
          return { kind: "service", userId: "", userName: "", projectId: "", roles: [], service: "tools" };
        },
        authorize() {},
      },
    });
  });
  afterAll(() => server.close());

  it("is made again once the credential has logged in again", async () => {
    const credential = new FixedCredential("tools", "stale", "fresh");
    useCallerCredential(credential, [server.url]);
    try {
      const res = await serviceClient(PlacementService, server.url).getResourceProvider({ uuid: "u" });
      expect(res.provider?.uuid).toBe("u");
      expect(credential.renewals).toEqual(["stale"]);
      expect(calls).toBe(1);
    } finally {
      dropCallerCredential(credential);
    }
  });

  it("fails when the new token is refused too, after one renewal", async () => {
    const credential = new FixedCredential("tools", "stale", "still-stale");
    useCallerCredential(credential, [server.url]);
    try {
      const err = await serviceClient(PlacementService, server.url)
        .getResourceProvider({ uuid: "u" })
        .then(
          () => undefined,
          (e: unknown) => e,
        );
      expect(isStratusError(err, "unauthorized")).toBe(true);
      expect(credential.renewals).toEqual(["stale"]);
    } finally {
      dropCallerCredential(credential);
    }
  });
});
