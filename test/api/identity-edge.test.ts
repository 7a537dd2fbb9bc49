// The identity's Keystone REST edge runs on the same REST machinery as the compute API
// (@stratus/runtime/http): a body nested thousands deep or holding NUL is a Keystone 400, and a
// body over the limit is a 413 that Python's http.client can read before it is done sending.
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { type IdentityUnderTest, startIdentity } from "@stratus/runtime/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

let identity: IdentityUnderTest;
beforeAll(async () => {
  identity = await startIdentity();
});
afterAll(async () => {
  await identity?.close();
});

const post = async (body: string) => {
  const res = await fetch(`${identity.restUrl}/v3/auth/tokens`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body,
  });
  return { status: res.status, body: (await res.json()) as { error?: { code: number; title: string } } };
};

describe("the identity's REST edge", () => {
  it("answers a body nested 5,000 deep, or holding NUL, with Keystone's 400", async () => {
    for (const body of [
      `{"auth":${"[".repeat(5000)}${"]".repeat(5000)}}`,
      '{"auth":{"identity":{"methods":["password"],"password":{"user":{"name":"admin\\u0000","password":"x"}}}}}',
    ]) {
      const r = await post(body);
      expect(r.status).toBe(400);
      expect(r.body.error).toMatchObject({ code: 400, title: "Bad Request" });
    }
  });

  it("answers 2 MB with a 413 that Python's http.client reads", async () => {
    const script = `
import http.client, sys
c = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]), timeout=30)
try:
    c.request("POST", "/v3/auth/tokens", body=b"x" * 2_000_000, headers={"content-type": "application/json"})
    r = c.getresponse()
    print(r.status)
except Exception as e:
    print(type(e).__name__)
`;
    const port = new URL(identity.restUrl).port;
    const { stdout } = await promisify(execFile)("python3", ["-c", script, port]);
    expect(stdout.trim()).toBe("413");
  });
});
