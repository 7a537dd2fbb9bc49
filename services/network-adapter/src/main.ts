// network-adapter: owns networks, segments, subnets, ports and IPAM; serves NetworkService.
import { NetworkService } from "@stratus/contracts/network/v1";
import { bindService, bootService, openServiceDatabase, storageConfig } from "@stratus/runtime";
import { z } from "zod";

const booted = await bootService({
  name: "network-adapter",
  defaultPort: 9103,
  config: {
    ...storageConfig,
    SCHEDULER_URL: z.url().default("http://127.0.0.1:9102").describe("Scheduler (placement) RPC URL"),
  },
});
await openServiceDatabase(booted, "network-adapter", new URL("../migrations", import.meta.url).pathname);
await booted.serve([bindService(NetworkService, {})]);
