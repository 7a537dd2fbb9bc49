// compute-agent: runs many simulated hosts; heartbeats; serves ComputeAgentService.
import { timestampNow } from "@bufbuild/protobuf/wkt";
import { ComputeAgentService } from "@stratus/contracts/computeagent/v1";
import { ServiceHeartbeatSchema } from "@stratus/contracts/events/v1";
import { bindService, bootService, Subjects } from "@stratus/runtime";
import { z } from "zod";
import { expandHostPattern } from "./hosts/host-spec.js";

const booted = await bootService({
  name: "compute-agent",
  defaultPort: 9104,
  config: {
    COMPUTE_HOSTS: z
      .string()
      .default("compute-1")
      .refine((v) => {
        try {
          return expandHostPattern(v).length > 0;
        } catch {
          return false;
        }
      }, "must be host names or name-[from-to] ranges, comma-separated")
      .describe("Simulated hosts, e.g. rack1-[1-4],rack2-[1-4]"),
    HEARTBEAT_INTERVAL_MS: z.coerce.number().int().min(100).default(10_000).describe("Heartbeat period"),
  },
});
const { config, bus, lifecycle } = booted;
const hosts = expandHostPattern(config.COMPUTE_HOSTS);

const beat = () => {
  for (const host of hosts) {
    bus.publish(Subjects.heartbeat, ServiceHeartbeatSchema, {
      binary: "nova-compute",
      host,
      zone: "nova",
      at: timestampNow(),
    });
  }
};
beat();
const timer = setInterval(beat, config.HEARTBEAT_INTERVAL_MS);
lifecycle.onShutdown("heartbeats", () => clearInterval(timer));

await booted.serve([
  bindService(ComputeAgentService, {
    listHosts: () => ({ hosts: hosts.map((name) => ({ name })) }),
  }),
]);
