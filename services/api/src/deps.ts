// What the handlers talk to: the owners' RPC clients and the image catalogue.
import type { Client } from "@connectrpc/connect";
import type { ConductorService } from "@stratus/contracts/compute/v1";
import type { ComputeAgentService } from "@stratus/contracts/computeagent/v1";
import type { NetworkService } from "@stratus/contracts/network/v1";
import type { PlacementService } from "@stratus/contracts/scheduler/v1/placement";
import type { Logger } from "@stratus/runtime";
import type { ImageCatalogue } from "./images.js";
import type { ListCache } from "./list-cache.js";
import type { ServerEvents } from "./watch/server-events.js";

export interface ApiDeps {
  conductor: Client<typeof ConductorService>;
  network: Client<typeof NetworkService>;
  placement: Client<typeof PlacementService>;
  computeAgent: Client<typeof ComputeAgentService>;
  images: ImageCatalogue;
  /** Server list answers kept until their project's servers change (absent: not cached). */
  listCache?: ListCache;
  logger: Logger;
  /** The servers' state changes (GET /v2.1/stratus/server-events); absent: not served. */
  serverEvents?: ServerEvents;
  /** How long a create whose answer was lost is asked again (default DEFAULT_CREATE_RETRY_MS). */
  createRetryMs?: number;
}
