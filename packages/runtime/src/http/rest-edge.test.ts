// The REST edges' shared machinery: a JSON body's text checked before parsing, a refused large
// body that an ordinary client (Python's http.client) can read the 413 of, and what a failed
// request answers.
import { execFile } from "node:child_process";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { Writable } from "node:stream";
import { promisify } from "node:util";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { StratusError } from "../errors.js";
import { parseJsonBody, readBody } from "./body.js";
import { restFault, ServiceUnavailable } from "./faults.js";
import { checkJsonText } from "./json-text.js";
import { createHttpServer, listenHttp, type RestServer, sendResponse } from "./server.js";

const refusal = (text: string) => {
  try {
    checkJsonText(text);
    return undefined;
  } catch (err) {
    return (err as StratusError).kind;
  }
};

describe("a JSON body's text", () => {
  it("is refused when nested deeper than the bound, counted outside strings only", () => {
    expect(refusal(`{"server":${"[".repeat(5000)}${"]".repeat(5000)}}`)).toBe("invalid_input");
    expect(refusal(`${"[".repeat(33)}${"]".repeat(33)}`)).toBe("invalid_input");
    expect(refusal(`${"[".repeat(32)}${"]".repeat(32)}`)).toBeUndefined();
    expect(refusal(`{"name":"${"[".repeat(100)}"}`)).toBeUndefined();
    expect(refusal(`{"name":"\\"${"{".repeat(100)}"}`)).toBeUndefined();
  });

  it("is refused when a string holds a NUL or an unpaired surrogate escape", () => {
    expect(refusal(`{"flavorRef":"\\u0000"}`)).toBe("invalid_input");
    expect(refusal(`{"a\\u0000":1}`)).toBe("invalid_input");
    expect(refusal(`{"name":"\\ud800"}`)).toBe("invalid_input");
    expect(refusal(`{"name":"\\uDC00x"}`)).toBe("invalid_input");
    expect(refusal(`{"name":"\\ud800\\u0041"}`)).toBe("invalid_input");
    // A pair is a character; an escaped backslash followed by u0000 is six characters of text.
    expect(refusal(`{"name":"\\ud83d\\ude00"}`)).toBeUndefined();
    expect(refusal(`{"name":"\\\\u0000"}`)).toBeUndefined();
    expect(refusal(`{"name":"😀 \\n \\" \\u00e9"}`)).toBeUndefined();
  });

  it("parses only what passed, and refuses bytes that are not UTF-8", () => {
    const parse = (b: Buffer) => {
      try {
        return parseJsonBody(b, "application/json");
      } catch (err) {
        return (err as StratusError).kind;
      }
    };
    expect(parse(Buffer.from(`{"a":[1,{"b":"\\u00e9"}]}`))).toEqual({ a: [1, { b: "é" }] });
    expect(parse(Buffer.from([0x7b, 0x22, 0x61, 0x22, 0x3a, 0x22, 0xff, 0x22, 0x7d]))).toBe("invalid_input");
    expect(parse(Buffer.from(`{"a":"\\u0000"}`))).toBe("invalid_input");
    expect(parse(Buffer.from("[".repeat(100_000)))).toBe("invalid_input");
  });
});

describe("a body over the limit", () => {
  const LIMIT = 100_000;
  let server: RestServer;
  let port: number;
  beforeAll(async () => {
    server = createHttpServer(pino({ level: "silent" }), undefined, async (req, res) => {
      try {
        const raw = await readBody(req, LIMIT);
        sendResponse(res, { status: 200, body: { read: raw.length } });
      } catch (err) {
        const fault = restFault(err, {
          logger: pino({ level: "silent" }),
          requestId: "req-1",
          service: "test",
          unexpected: "unexpected",
        });
        sendResponse(res, { status: fault.status, body: { message: fault.message }, headers: fault.headers });
      }
    });
    await listenHttp(server, 0, "127.0.0.1");
    port = (server.address() as AddressInfo).port;
  });
  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

  // Python's http.client writes the whole body before it reads the answer: the server must read
  // what it refused, or the client's write fails with a broken pipe.
  const python = `
import http.client, sys
port, size = int(sys.argv[1]), int(sys.argv[2])
out = []
c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
for body in (b"x" * size, b"{}"):
    try:
        c.request("POST", "/", body=body, headers={"content-type": "application/json"})
        r = c.getresponse()
        r.read()
        out.append(str(r.status))
    except Exception as e:
        out.append(type(e).__name__)
print(" ".join(out))
`;
  const send = async (size: number) =>
    (await promisify(execFile)("python3", ["-c", python, String(port), String(size)])).stdout.trim();

  it("gets a 413 that Python's http.client reads, on a connection it can use again", async () => {
    for (let i = 0; i < 3; i++) expect(await send(2_000_000)).toBe("413 200");
    expect(await send(8_000_000)).toBe("413 200");
  }, 60_000);

  it("declared past what is read of a refused body: a 413 at once, closing the connection", async () => {
    const answer = await new Promise<{ status?: number; connection?: string }>((resolve, reject) => {
      const req = http.request(
        { port, method: "POST", headers: { "content-length": 64 * 1024 * 1024 } },
        (res) => {
          res.resume();
          resolve({ status: res.statusCode, connection: res.headers.connection });
        },
      );
      req.on("error", reject);
      req.write("x"); // the rest is never sent: the answer must not wait for it
    });
    expect(answer).toEqual({ status: 413, connection: "close" });
  });
});

describe("what a failed request answers", () => {
  const lines: Record<string, unknown>[] = [];
  const logger = pino(
    { level: "info" },
    new Writable({
      write(chunk, _enc, done) {
        lines.push(JSON.parse(String(chunk)));
        done();
      },
    }),
  );
  const policy = { logger, requestId: "req-42", service: "compute", unexpected: "Unexpected API Error." };

  it("a client error keeps its message and is not logged as a failure", () => {
    lines.length = 0;
    expect(restFault(new StratusError("not_found", "Flavor 9 could not be found."), policy)).toEqual({
      status: 404,
      message: "Flavor 9 could not be found.",
      headers: {},
    });
    expect(lines).toEqual([]);
  });

  it("a 503 names the kind of service, not the address, asks to retry, and logs the cause", () => {
    lines.length = 0;
    const cause = new StratusError("unavailable", "connect ECONNREFUSED 127.0.0.1:9101");
    const named = restFault(new ServiceUnavailable("network", { cause }), policy);
    expect(named).toEqual({
      status: 503,
      message: "The network service is unavailable, try again later.",
      headers: { "retry-after": "5" },
    });
    expect(restFault(cause, policy).message).toBe("The compute service is unavailable, try again later.");
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatchObject({ request_id: "req-42" });
    expect(JSON.stringify(lines[0])).toContain("ECONNREFUSED 127.0.0.1:9101");
  });

  it("any other failure is a 500 in the edge's words, its cause logged", () => {
    lines.length = 0;
    const secret = new Error(
      'invalid int32: 2147483648 (field "stratus.compute.v1.CreateServersRequest.max_count")',
    );
    for (const err of [
      secret,
      new StratusError("internal", secret.message),
      new StratusError("no_valid_host", "x"),
    ]) {
      expect(restFault(err, policy)).toEqual({ status: 500, message: "Unexpected API Error.", headers: {} });
    }
    expect(lines).toHaveLength(3);
    expect(lines.every((l) => l.request_id === "req-42" && l.level === 50)).toBe(true);
  });
});
