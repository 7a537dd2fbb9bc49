// What the placement core reports when a consumer's allocations change; main.ts publishes it on
// NATS (stratus.allocation.claimed / stratus.allocation.released).
export interface AllocationChange {
  consumerUuid: string;
  providerUuids: string[];
  /** True when the consumer holds allocations after the change. */
  claimed: boolean;
  /** The compute host, when the change is a scheduler claim. */
  host: string;
}

export type AllocationNotifier = (change: AllocationChange) => void;
