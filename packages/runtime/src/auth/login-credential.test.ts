// A login's token is renewed before it expires without any call asking for it, and again when a
// callee refused it; callers at once share one login, and a token already replaced is kept.
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createLogger } from "../log.js";
import { KeystoneClient } from "./keystone-client.js";
import { KeystoneServiceToken } from "./keystone-service-token.js";
import { LoginCredential } from "./login-credential.js";

/** POST /v3/auth/tokens: token-1, token-2, … each living `lifetimeMs`. */
let issued = 0;
let lifetimeMs = 60_000;
let server: Server;
let url = "";
beforeAll(async () => {
  server = createServer((req, res) => {
    req.resume();
    req.on("end", () => {
      const now = Date.now();
      res.writeHead(201, { "content-type": "application/json", "x-subject-token": `token-${++issued}` });
      res.end(
        JSON.stringify({
          token: {
            methods: ["password"],
            user: { id: "u", name: "stratus-tools", domain: { id: "default" } },
            roles: [{ name: "service" }],
            issued_at: new Date(now).toISOString(),
            expires_at: new Date(now + lifetimeMs).toISOString(),
            audit_ids: ["a"],
          },
        }),
      );
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v3`;
});
afterAll(() => new Promise((resolve) => server.close(resolve)));

const logger = createLogger("test", "silent");
function credential(): LoginCredential {
  const login = new KeystoneServiceToken(
    new KeystoneClient(url, 2000, logger),
    () => ({
      user: { name: "stratus-tools", password: "pw", domainName: "Default" },
      project: { name: "service", domainName: "Default" },
    }),
    Date.now,
  );
  return new LoginCredential("tools", login, logger, { retryMs: 50 });
}

describe("LoginCredential", () => {
  it("renews its token with a quarter of its life left, unasked", async () => {
    lifetimeMs = 800;
    const c = credential();
    await c.start();
    const first = c.token();
    expect(first).toMatch(/^token-\d+$/);
    const deadline = Date.now() + 5000;
    while (c.token() === first && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    c.close();
    expect(c.token()).not.toBe(first);
    expect(c.token()).toBeDefined();
  });

  it("logs in again once for callers refused at once, and keeps a token that was replaced since", async () => {
    lifetimeMs = 60_000;
    const c = credential();
    await c.start();
    const refused = c.token();
    const before = issued;
    await Promise.all([c.renew(refused), c.renew(refused), c.renew(refused)]);
    expect(issued).toBe(before + 1);
    const renewed = c.token();
    expect(renewed).not.toBe(refused);
    await c.renew(refused);
    expect(c.token()).toBe(renewed);
    expect(issued).toBe(before + 1);
    c.close();
  });
});
