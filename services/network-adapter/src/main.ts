// network-adapter: owns networks, segments, subnets, ports and IPAM; serves NetworkService.
import { PlacementService } from "@stratus/contracts/scheduler/v1/placement";
import { bootService, openServiceDatabase, serviceClient, storageConfig } from "@stratus/runtime";
import { z } from "zod";
import { networkPolicy } from "./network-policy.js";
import { PlacementSync } from "./placement-sync.js";
import { networkService } from "./rpc.js";

const booted = await bootService({
  name: "network-adapter",
  defaultPort: 9103,
  config: {
    ...storageConfig,
    SCHEDULER_URL: z.url().default("http://127.0.0.1:9102").describe("Scheduler (placement) RPC URL"),
  },
});
const db = await openServiceDatabase(
  booted,
  "network-adapter",
  new URL("../migrations", import.meta.url).pathname,
);
const sync = new PlacementSync(
  db,
  serviceClient(PlacementService, booted.config.SCHEDULER_URL),
  booted.logger,
);
booted.lifecycle.onShutdown("placement sync", () => sync.close());
await booted.serve([networkService(db, booted.bus, sync, booted.logger)], { policies: [networkPolicy] });
// Repair drift between the network and placement (in the background: placement may be down).
void sync.reconcileAll().catch((err: unknown) => booted.logger.warn({ err }, "placement reconcile failed"));
