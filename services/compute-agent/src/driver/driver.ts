// The virt driver interface the agent talks to (Nova's ComputeDriver, reduced to what a build
// and a delete need). The fake driver is the first implementation; a real one (libvirt, a cloud
// API) would implement the same calls.

export const PowerState = { running: 1, shutdown: 4 } as const;

export interface SpawnRequest {
  serverId: string;
  host: string;
  attempt: number;
  portIds: string[];
  name: string;
  imageRef: string;
  vcpus: number;
  memoryMb: number;
  diskGb: number;
  metadata: Record<string, string>;
  /** The caller has just looked for an instance of this server on the host and found none. */
  alreadyChecked?: boolean;
}

export interface InstanceRecord {
  serverId: string;
  host: string;
  attempt: number;
  powerState: number;
  portIds: string[];
  name: string;
  imageRef: string;
  vcpus: number;
  memoryMb: number;
  diskGb: number;
  createdAt: Date;
}

/** A spawn that did not produce a running instance; retryable: worth trying another host. */
export class SpawnError extends Error {
  override readonly name = "SpawnError";
  constructor(
    message: string,
    readonly retryable: boolean,
  ) {
    super(message);
  }
}

export interface VirtDriver {
  readonly hypervisorType: string;
  /**
   * Starts the instance on the host. Idempotent per (server, host): an instance already there is
   * returned as it is. Throws SpawnError when the hypervisor refuses.
   */
  spawn(request: SpawnRequest): Promise<InstanceRecord>;
  /** Stops and removes the instance; false when there was none. */
  destroy(serverId: string, host: string): Promise<boolean>;
  get(serverId: string, host: string): Promise<InstanceRecord | undefined>;
  list(filter?: { host?: string; serverId?: string }): Promise<InstanceRecord[]>;
  /** Instances per host. */
  countByHost(): Promise<Map<string, number>>;
}
