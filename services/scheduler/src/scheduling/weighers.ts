// Host weighing (Nova's RAM and CPU weighers, each normalised to 0..1 across the candidates):
// free MEMORY_MB and free VCPU (spread prefers the hosts with most free, pack the least), and the
// free addresses of the segment(s) the host's candidate would take IPs from (roomier segments
// first, whatever the policy). Ties (a fresh, uniform cloud) go to the emptier host by ratio.
export type WeigherKind = "spread" | "pack";

/** What the weighers look at for one host candidate (amounts as seen now, before the claim). */
export interface HostState {
  host: string;
  ramFree: number;
  ramCapacity: number;
  vcpuFree: number;
  vcpuCapacity: number;
  /** Free IPV4_ADDRESS of the sharing providers this candidate uses; undefined when none. */
  ipFree?: number;
}

const ratio = (free: number, capacity: number) => (capacity > 0 ? free / capacity : 0);

function normalise(values: number[]): number[] {
  const min = Math.min(...values);
  const max = Math.max(...values);
  return values.map((v) => (max === min ? 0 : (v - min) / (max - min)));
}

/** Higher is better. The IP weigher counts half as much as RAM or VCPU. */
export function weighHosts(hosts: HostState[], kind: WeigherKind): number[] {
  const sign = kind === "pack" ? -1 : 1;
  const ram = normalise(hosts.map((h) => h.ramFree));
  const cpu = normalise(hosts.map((h) => h.vcpuFree));
  const ip = normalise(hosts.map((h) => h.ipFree ?? 0));
  const fill = normalise(
    hosts.map((h) => ratio(h.ramFree, h.ramCapacity) + ratio(h.vcpuFree, h.vcpuCapacity)),
  );
  return hosts.map((_, i) => sign * (ram[i]! + cpu[i]! + 0.01 * fill[i]!) + 0.5 * ip[i]!);
}
