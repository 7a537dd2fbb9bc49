// OpenTelemetry across the mesh: with OTEL_EXPORTER_OTLP_ENDPOINT set, every service sends its
// spans to an OTLP/HTTP collector (here a small one in this test, reading the JSON the exporter
// posts), and one server create is one trace: from the REST edge into the conductor's RPC, and the
// build run it starts through the scheduler, the network-adapter and, over NATS, the compute
// agent.
import http from "node:http";
import type { AddressInfo } from "node:net";
import { NetworkService } from "@stratus/contracts/network/v1";
import { serviceClient } from "@stratus/runtime";
import type { Mesh } from "@stratus/runtime/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createRoutedNetwork, rest, startApiMesh, until, waitServer } from "../api/helpers.js";

interface Span {
  service: string;
  traceId: string;
  spanId: string;
  parentSpanId: string;
  name: string;
  kind: number;
}
const spans: Span[] = [];
let collector: http.Server;
let mesh: Mesh;

beforeAll(async () => {
  collector = http.createServer((req, res) => {
    let body = "";
    req.setEncoding("utf8");
    req.on("data", (d) => {
      body += d;
    });
    req.on("end", () => {
      if (req.url === "/v1/traces") {
        const doc = JSON.parse(body) as {
          resourceSpans: {
            resource: { attributes: { key: string; value: { stringValue?: string } }[] };
            scopeSpans: { spans: Omit<Span, "service">[] }[];
          }[];
        };
        for (const rs of doc.resourceSpans) {
          const service =
            rs.resource.attributes.find((a) => a.key === "service.name")?.value.stringValue ?? "";
          for (const ss of rs.scopeSpans) for (const s of ss.spans) spans.push({ ...s, service });
        }
      }
      res.writeHead(200, { "content-type": "application/json" });
      res.end("{}");
    });
  });
  await new Promise<void>((r) => collector.listen(0, "127.0.0.1", r));
  const endpoint = `http://127.0.0.1:${(collector.address() as AddressInfo).port}`;
  ({ mesh } = await startApiMesh({
    env: { LOG_LEVEL: "info", OTEL_EXPORTER_OTLP_ENDPOINT: endpoint, OTEL_BSP_SCHEDULE_DELAY: "200" },
  }));
}, 240_000);
afterAll(async () => {
  await mesh?.close();
  collector?.close();
});

describe("tracing", () => {
  it("follows a server create from the REST edge through every service and NATS", async () => {
    const net = serviceClient(NetworkService, mesh.url("network-adapter"));
    const network = await createRoutedNetwork(net, "p1", "traced-net");
    const created = await rest(mesh.apiUrl, "POST", "/v2.1/servers", {
      version: "2.37",
      body: {
        server: {
          name: "traced",
          imageRef: "a9e6c1b4-5f0d-4c36-8a57-2f4f6b1c0c01",
          flavorRef: "1",
          networks: [{ uuid: network.id }],
        },
      },
    });
    expect(created.status).toBe(202);
    await waitServer(mesh.apiUrl, created.body.server.id);

    // The request: the api's REST span, and the conductor's CreateServers as its child.
    const accepted = await until("the create's trace", async () => {
      const edge = spans.find((s) => s.service === "api" && s.name === "POST compute");
      const create = spans.find(
        (s) => s.service === "conductor" && s.name === "stratus.compute.v1.ConductorService/CreateServers",
      );
      return edge && create && create.traceId === edge.traceId ? { edge, create } : undefined;
    });
    expect(accepted.create.parentSpanId).toBe(accepted.edge.spanId);

    // The build: one trace from a conductor run to the scheduler, the network-adapter, the agent
    // (a NATS consumer span) and the result the conductor reads back.
    const build = await until("the build's trace", async () => {
      const byTrace = new Map<string, Set<string>>();
      for (const s of spans) {
        const services = byTrace.get(s.traceId) ?? new Set();
        services.add(s.service);
        byTrace.set(s.traceId, services);
      }
      return [...byTrace.entries()].find(([, services]) =>
        ["conductor", "scheduler", "network-adapter", "compute-agent"].every((n) => services.has(n)),
      );
    });
    const trace = spans.filter((s) => s.traceId === build[0]);
    const ids = new Set(trace.map((s) => s.spanId));
    const roots = trace.filter((s) => !s.parentSpanId || !ids.has(s.parentSpanId));
    // One tree: a run started by the create continues the create's trace (root: the REST span); a
    // run a sweep started later has its own (root: the run).
    expect(roots).toHaveLength(1);
    expect(["POST compute", "build run"]).toContain(roots[0]!.name);
    expect(trace.some((s) => s.service === "conductor" && s.name === "build run")).toBe(true);
    expect(
      trace.some((s) => s.service === "compute-agent" && s.name.startsWith("process stratus.compute.")),
    ).toBe(true);
    expect(trace.some((s) => s.service === "scheduler" && s.name.endsWith("/SelectDestinations"))).toBe(true);
  });
});
