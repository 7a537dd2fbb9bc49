// api: the edge. Serves the Nova-compatible REST API on API_PORT and health/reflection on PORT.
import http from "node:http";
import { bootService, newRequestId, novaFault } from "@stratus/runtime";
import { z } from "zod";

const booted = await bootService({
  name: "api",
  defaultPort: 9100,
  config: {
    API_PORT: z.coerce.number().int().min(0).max(65535).default(8774).describe("REST compute API port"),
    CONDUCTOR_URL: z.url().default("http://127.0.0.1:9101").describe("Conductor RPC URL"),
  },
});
const { config, logger, lifecycle } = booted;

const rest = http.createServer((req, res) => {
  const requestId = newRequestId();
  res.setHeader("x-openstack-request-id", requestId);
  res.setHeader("content-type", "application/json");
  res.statusCode = 404;
  res.end(JSON.stringify(novaFault(404, "The resource could not be found.")));
  logger.info({ request_id: requestId, method: req.method, url: req.url, status: 404 }, "rest");
});
await new Promise<void>((resolve) => rest.listen(config.API_PORT, config.HOST, resolve));
lifecycle.onShutdown("rest server", () => new Promise<void>((resolve) => rest.close(() => resolve())));
logger.info({ port: config.API_PORT }, "compute API listening");

await booted.serve([]);
