// What the conductor's unit tests accept: a flavor and a CreateServers request, as the RPC makes them.
import type { FlavorRecord } from "../compute/flavors.js";
import type { NewServersRequest } from "../compute/server-acceptance.js";

export const tiny: FlavorRecord = {
  id: "1",
  name: "m1.tiny",
  vcpus: 1,
  ramMb: 512,
  diskGb: 1,
  ephemeralGb: 0,
  swapMb: 0,
  rxtxFactor: 1,
  isPublic: true,
  extraSpecs: {},
};

/** One m1.tiny server with networks: none, unless `over` says otherwise. */
export const newServersRequest = (
  projectId: string,
  over: Partial<NewServersRequest> = {},
): NewServersRequest => ({
  name: "vm",
  flavor: tiny,
  imageRef: "img",
  minCount: 1,
  maxCount: 1,
  networkMode: "none",
  networks: [],
  metadata: { k: "v" },
  userData: "",
  clientToken: "",
  projectId,
  userId: "u",
  keyName: "",
  availabilityZone: "",
  description: "",
  hostname: "",
  requestId: "req-test",
  maxAttempts: 3,
  ...over,
});
