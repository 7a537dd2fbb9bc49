// network-adapter: owns networks, segments, subnets, ports and IPAM; serves NetworkService.
import { PlacementService } from "@stratus/contracts/scheduler/v1/placement";
import {
  bootService,
  openServiceDatabase,
  peerUrl,
  registerQueryGauge,
  serviceClient,
  storageSettings,
} from "@stratus/runtime";
import { z } from "zod";
import { FreeListKeeper } from "./core/free-list-keeper.js";
import { setDefaultQuotas } from "./core/quotas.js";
import { networkPolicy } from "./network-policy.js";
import { PlacementSync } from "./placement-sync.js";
import { networkService } from "./rpc.js";

/** A quota limit: -1 (unlimited) or more. */
const limit = (fallback: number) =>
  z.coerce
    .number()
    .int()
    .min(-1)
    .max(2 ** 31 - 1)
    .default(fallback);

const booted = await bootService({
  name: "network-adapter",
  defaultPort: 9103,
  config: {
    ...storageSettings({ service: "network-adapter" }),
    SCHEDULER_URL: peerUrl.default("http://127.0.0.1:9102").describe("Scheduler (placement) RPC URL(s)"),
    QUOTA_NETWORK: limit(100).describe(
      "Default networks per project (-1: unlimited); alike on every replica",
    ),
    QUOTA_SUBNET: limit(100).describe("Default subnets per project (-1: unlimited)"),
    QUOTA_PORT: limit(500).describe("Default ports per project (-1: unlimited)"),
    QUOTA_ROUTER: limit(10).describe("Default routers per project (-1: unlimited)"),
    QUOTA_SUBNETPOOL: limit(-1).describe("Default subnet pools per project (-1: unlimited)"),
  },
});
const db = await openServiceDatabase(
  booted,
  "network-adapter",
  new URL("../migrations", import.meta.url).pathname,
);
const { QUOTA_NETWORK, QUOTA_SUBNET, QUOTA_PORT, QUOTA_ROUTER, QUOTA_SUBNETPOOL } = booted.config;
await setDefaultQuotas(db, {
  network: QUOTA_NETWORK,
  subnet: QUOTA_SUBNET,
  port: QUOTA_PORT,
  router: QUOTA_ROUTER,
  subnetpool: QUOTA_SUBNETPOOL,
});
const sync = new PlacementSync(
  db,
  serviceClient(PlacementService, booted.config.SCHEDULER_URL),
  booted.logger,
);
booted.lifecycle.onShutdown("placement sync", () => sync.close());
const freeLists = new FreeListKeeper(db, booted.logger);
// Each routed segment's IPv4 addresses, read at each scrape: the size of its subnets' allocation
// pools and how many of those addresses ports hold (what placement's IPV4_ADDRESS inventory of
// the segment is made from, placement-sync.ts).
registerQueryGauge({
  name: "stratus_ipam_segment_addresses",
  help: "IPv4 addresses of each segment's subnets' allocation pools: in pools (size) and held by ports (used)",
  labelNames: ["segment", "state"],
  query: () =>
    db.query(
      `SELECT sn.segment_id AS segment, 'size' AS state, sum(p.last_ip - p.first_ip + 1) AS value
         FROM allocation_pools p JOIN subnets sn ON sn.id = p.subnet_id
        WHERE sn.segment_id IS NOT NULL GROUP BY sn.segment_id
       UNION ALL
       SELECT sn.segment_id AS segment, 'used' AS state, count(*) AS value
         FROM ip_allocations a JOIN subnets sn ON sn.id = a.subnet_id
        WHERE sn.segment_id IS NOT NULL
          AND EXISTS (SELECT 1 FROM allocation_pools p
                       WHERE p.subnet_id = a.subnet_id AND a.ip BETWEEN p.first_ip AND p.last_ip)
        GROUP BY sn.segment_id`,
    ),
});
booted.lifecycle.onShutdown("free lists", () => freeLists.close());
await booted.serve([networkService(db, booted.bus, sync, freeLists, booted.logger)], {
  policies: [networkPolicy],
});
// Repair drift between the network and placement (in the background: placement may be down).
void sync.reconcileAll().catch((err: unknown) => booted.logger.warn({ err }, "placement reconcile failed"));
