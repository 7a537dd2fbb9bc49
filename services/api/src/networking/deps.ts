// What the Networking API's handlers talk to: the network-adapter, the owner of every resource.
import type { Client } from "@connectrpc/connect";
import type { NetworkService } from "@stratus/contracts/network/v1";
import type { Logger } from "@stratus/runtime";

export interface NetworkDeps {
  network: Client<typeof NetworkService>;
  logger: Logger;
}
