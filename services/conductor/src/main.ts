// conductor: owns the compute database; orchestrates builds; serves ConductorService.
import { timestampDate, timestampFromDate } from "@bufbuild/protobuf/wkt";
import { ConductorService } from "@stratus/contracts/compute/v1";
import { ServiceHeartbeatSchema } from "@stratus/contracts/events/v1";
import { bindService, bootService, openServiceDatabase, Subjects, storageConfig } from "@stratus/runtime";
import { z } from "zod";
import { ServiceRegistry } from "./services/service-registry.js";

const booted = await bootService({
  name: "conductor",
  defaultPort: 9101,
  config: {
    ...storageConfig,
    SERVICE_DOWN_TIME_S: z.coerce
      .number()
      .int()
      .positive()
      .default(60)
      .describe("Seconds without heartbeat before a service is down"),
  },
});
const { config, bus } = booted;
const db = await openServiceDatabase(booted, "conductor", new URL("../migrations", import.meta.url).pathname);

const registry = new ServiceRegistry(db, config.SERVICE_DOWN_TIME_S * 1000);
bus.subscribe(
  Subjects.heartbeat,
  ServiceHeartbeatSchema,
  (hb) =>
    registry.recordHeartbeat({
      binary: hb.binary,
      host: hb.host,
      zone: hb.zone,
      disabled: hb.disabled,
      at: hb.at ? timestampDate(hb.at) : new Date(),
    }),
  { queue: "conductor" },
);

await booted.serve([
  bindService(ConductorService, {
    async listComputeServices(req) {
      const services = await registry.list({ binary: req.binary, host: req.host });
      return {
        services: services.map((s) => ({
          ...s,
          updatedAt: timestampFromDate(s.updatedAt),
        })),
      };
    },
  }),
]);
