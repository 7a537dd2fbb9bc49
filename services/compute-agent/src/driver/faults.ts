// The fake driver's knobs a test can steer per host: fail the next N spawns, and a spawn delay
// (default SPAWN_DELAY_MS). Kept in memory: an agent restart clears injected faults.

export interface HostFaults {
  failNextSpawns: number;
  spawnDelayMs: number;
}

export class FaultInjector {
  private readonly hosts = new Map<string, HostFaults>();

  constructor(private readonly defaultDelayMs: number) {}

  get(host: string): HostFaults {
    return this.hosts.get(host) ?? { failNextSpawns: 0, spawnDelayMs: this.defaultDelayMs };
  }

  /** Negative values leave the setting unchanged. */
  set(host: string, change: { failNextSpawns: number; spawnDelayMs: number }): HostFaults {
    const current = this.get(host);
    const next = {
      failNextSpawns: change.failNextSpawns >= 0 ? change.failNextSpawns : current.failNextSpawns,
      spawnDelayMs: change.spawnDelayMs >= 0 ? change.spawnDelayMs : current.spawnDelayMs,
    };
    this.hosts.set(host, next);
    return next;
  }

  /** Consumes one injected failure; true when this spawn must fail. */
  takeFailure(host: string): boolean {
    const f = this.hosts.get(host);
    if (!f || f.failNextSpawns <= 0) return false;
    f.failNextSpawns -= 1;
    return true;
  }
}

/**
 * Metadata faults: fake_fail_spawn=always fails every spawn; fake_fail_attempts=N fails attempts
 * 1..N (BuildCommand.attempt is 1-based). Returns the reason, or undefined when the spawn may go on.
 */
export function metadataFault(metadata: Record<string, string>, attempt: number): string | undefined {
  if (metadata.fake_fail_spawn === "always")
    return "fake driver: spawn fails always (metadata fake_fail_spawn=always)";
  const raw = metadata.fake_fail_attempts;
  if (raw !== undefined && /^\d+$/.test(raw.trim())) {
    const n = Number(raw.trim());
    if (attempt <= n) {
      return `fake driver: spawn fails on attempt ${attempt} of the first ${n} (metadata fake_fail_attempts=${n})`;
    }
  }
  return undefined;
}
