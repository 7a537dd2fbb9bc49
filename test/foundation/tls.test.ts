// A service started with a certificate (TLS_CERT_FILE, TLS_KEY_FILE) serves TLS on its REST and
// RPC ports, and calls its peers over TLS, verified with TLS_CA_FILE. The api is the service under
// test (it has both kinds of port); its conductor is a TLS RPC server in this process. Plain gRPC
// (@grpc/grpc-js, as any language's client) and Connect over either HTTP version reach the RPC
// port. A certificate or key that cannot be used stops the service at start, naming the variable.
import { writeFileSync } from "node:fs";
import http2 from "node:http2";
import https from "node:https";
import { join } from "node:path";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { ConductorService } from "@stratus/contracts/compute/v1";
import { bindService } from "@stratus/runtime";
import {
  freePort,
  makeTestCertificates,
  meshIdentity,
  rawCall,
  repoRoot,
  type ServiceProcess,
  spawnService,
  startNats,
  startService,
  startTestRpcServer,
  type TestCertificates,
  type TestNats,
} from "@stratus/runtime/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const HEALTH_CHECK = "/grpc.health.v1.Health/Check";

let certs: TestCertificates;
let nats: TestNats;
let conductor: Awaited<ReturnType<typeof startTestRpcServer>>;
let api: ServiceProcess;
let apiPort: number;
let networkApiPort: number;
const conductorCalls: string[] = [];

beforeAll(async () => {
  certs = makeTestCertificates();
  nats = await startNats();
  conductor = await startTestRpcServer(
    [
      bindService(ConductorService, {
        listFlavors: (_req, ctx) => {
          conductorCalls.push(ctx.requestHeader.get("x-openstack-request-id") ?? "");
          return { flavors: [{ id: "1", name: "m1.tiny", vcpus: 1, ramMb: 512, diskGb: 1, isPublic: true }] };
        },
      }),
    ],
    { tls: certs.server },
  );
  apiPort = await freePort();
  networkApiPort = await freePort();
  api = await startService("api", {
    NATS_URL: nats.url,
    API_PORT: String(apiPort),
    NETWORK_API_PORT: String(networkApiPort),
    CONDUCTOR_URL: conductor.url,
    TLS_CERT_FILE: certs.certFile,
    TLS_KEY_FILE: certs.keyFile,
    TLS_CA_FILE: certs.caFile,
  });
});
afterAll(async () => {
  await api?.stop();
  await conductor?.close();
  await nats?.stop();
  certs?.remove();
});

describe("a service with a certificate", () => {
  it("serves its REST API over HTTPS, and calls its TLS peer with the CA", async () => {
    const identity = await meshIdentity(nats);
    const { token } = await identity.token({ user: "alice", project: "p1", roles: ["member"] });
    const res = await httpsGet(`https://127.0.0.1:${apiPort}/v2.1/flavors`, { "x-auth-token": token });
    expect(res.status).toBe(200);
    const { flavors } = JSON.parse(res.body);
    expect(flavors.map((f: { name: string }) => f.name)).toEqual(["m1.tiny"]);
    // Links name the scheme the request came with.
    expect(flavors[0].links[0].href).toBe(`https://127.0.0.1:${apiPort}/v2.1/flavors/1`);
    expect(conductorCalls.at(-1)).toBe(res.headers["x-openstack-request-id"]);
  });

  it("serves its Networking API over HTTPS too, with https links", async () => {
    const res = await httpsGet(`https://127.0.0.1:${networkApiPort}/`, {});
    expect(res.status).toBe(200);
    expect(JSON.parse(res.body).versions[0].links[0].href).toBe(`https://127.0.0.1:${networkApiPort}/v2.0/`);
  });

  it("answers a plain gRPC client over TLS on its RPC port", async () => {
    const def = protoLoader.loadSync("grpc/health/v1/health.proto", {
      includeDirs: [join(repoRoot, "third_party/proto")],
      enums: String,
    });
    const { Health } = (grpc.loadPackageDefinition(def) as any).grpc.health.v1;
    const client = new Health(`127.0.0.1:${api.port}`, grpc.credentials.createSsl(certs.ca));
    try {
      const res = await new Promise<{ status: string }>((resolve, reject) =>
        client.Check({ service: "" }, (err: Error | null, r: { status: string }) =>
          err ? reject(err) : resolve(r),
        ),
      );
      expect(res.status).toBe("SERVING");
    } finally {
      client.close();
    }
  });

  it("answers Connect over HTTP/1.1 and HTTP/2 with TLS on the same RPC port", async () => {
    expect(api.url).toBe(`https://127.0.0.1:${api.port}`);
    const h1 = await httpsPost(`${api.url}${HEALTH_CHECK}`, "{}");
    expect(h1).toEqual({ status: 200, body: { status: "SERVING" } });
    const h2 = await h2Post(`${api.url}${HEALTH_CHECK}`, "{}");
    expect(h2).toEqual({ status: 200, body: { status: "SERVING" } });
  });

  it("stops at start, naming the variable, on a key that is not the certificate's", async () => {
    const p = spawnService("api", {
      ...unusedLogin(),
      NATS_URL: "nats://127.0.0.1:1",
      TLS_CERT_FILE: certs.certFile,
      TLS_KEY_FILE: certs.otherKeyFile,
    });
    expect(await p.exited).toBe(2);
    expect(p.output.join("\n")).toContain(
      `TLS_KEY_FILE=${JSON.stringify(certs.otherKeyFile)}: not the key of the certificate in TLS_CERT_FILE`,
    );
  });

  it("stops at start, naming the variable, on a certificate that cannot be read", async () => {
    const missing = join(certs.dir, "missing.pem");
    const p = spawnService("api", {
      ...unusedLogin(),
      NATS_URL: "nats://127.0.0.1:1",
      TLS_CERT_FILE: missing,
      TLS_KEY_FILE: certs.keyFile,
    });
    expect(await p.exited).toBe(2);
    expect(p.output.join("\n")).toContain(`TLS_CERT_FILE=${JSON.stringify(missing)}: cannot be read`);
  });
});

/**
 * A service's login settings that parse but are never used: the service stops at its TLS files,
 * before it connects to NATS or logs in anywhere.
 */
function unusedLogin(): Record<string, string> {
  const file = join(certs.dir, "service.password");
  writeFileSync(file, "unused\n", { mode: 0o600 });
  return { SERVICE_PASSWORD_FILE: file };
}

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

function httpsRequest(url: string, method: string, headers: Record<string, string>, body?: string) {
  return new Promise<Answer>((resolve, reject) => {
    const req = https.request(url, { method, headers, ca: certs.ca, agent: false }, (res) => {
      let text = "";
      res.on("data", (c: Buffer) => {
        text += c.toString();
      });
      res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text }));
    });
    req.on("error", reject);
    req.end(body);
  });
}

const httpsGet = (url: string, headers: Record<string, string>) => httpsRequest(url, "GET", headers);

async function httpsPost(url: string, body: string) {
  const res = await httpsRequest(url, "POST", { "content-type": "application/json" }, body);
  return { status: res.status, body: JSON.parse(res.body) };
}

async function h2Post(url: string, body: string): Promise<{ status: number; body: unknown }> {
  const session = http2.connect(url, { ca: certs.ca });
  try {
    const headers = { "content-type": "application/json" };
    const answer = await rawCall(session, new URL(url).pathname, headers, Buffer.from(body)).answer;
    return { status: answer.status, body: JSON.parse(answer.body) };
  } finally {
    session.close();
  }
}
