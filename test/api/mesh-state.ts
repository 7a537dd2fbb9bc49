// What the mesh holds, read through its owners' RPCs as an admin: servers (conductor), networks and
// ports (network-adapter), usages of every resource provider (placement). Two reads that differ
// mean something changed; `settled` waits until builds and deletes in flight are over. Shared by
// the property test and bench/fuzz.
import { ConductorService } from "@stratus/contracts/compute/v1";
import { NetworkService } from "@stratus/contracts/network/v1";
import { PlacementService } from "@stratus/contracts/scheduler/v1/placement";
import { serviceClient } from "@stratus/runtime";
import type { Mesh } from "@stratus/runtime/testing";
import { asAdmin, until } from "./helpers.js";

export interface MeshState {
  servers: string[];
  networks: string[];
  ports: string[];
  usages: string[];
  /** Servers still building or being deleted. */
  inFlight: number;
}

export function meshStateReader(mesh: Mesh): () => Promise<MeshState> {
  const conductor = serviceClient(ConductorService, mesh.url("conductor"));
  const network = serviceClient(NetworkService, mesh.url("network-adapter"));
  const placement = serviceClient(PlacementService, mesh.url("scheduler"));
  return () =>
    asAdmin(async () => {
      const [{ servers }, { networks }, { ports }, { providers }] = await Promise.all([
        conductor.listServers({ allProjects: true, includeDeleted: true, limit: 10_000 }),
        network.listNetworks({}),
        network.listPorts({}),
        placement.listResourceProviders({}),
      ]);
      const usages = await Promise.all(
        providers.map(async (p) => {
          const { usages: u } = await placement.getUsages({ providerUuid: p.uuid });
          const used = Object.entries(u)
            .filter(([, n]) => n > 0n)
            .map(([rc, n]) => `${rc}=${n}`)
            .sort();
          return `${p.name}:${used.join(",")}`;
        }),
      );
      return {
        servers: servers.map((s) => `${s.id} ${s.status} ${s.taskState} ${s.host}`).sort(),
        networks: networks.map((n) => `${n.id} ${n.name} ${n.subnetIds.length}`).sort(),
        ports: ports
          .map(
            (p) => `${p.id} ${p.deviceId} ${p.bindingHostId} ${p.fixedIps.map((f) => f.ipAddress).join(",")}`,
          )
          .sort(),
        usages: usages.sort(),
        inFlight: servers.filter((s) => s.status === "BUILD" || s.taskState !== "").length,
      };
    });
}

/** The state once nothing is in flight and two reads in a row agree. */
export async function settledState(read: () => Promise<MeshState>, timeoutMs = 120_000): Promise<MeshState> {
  let last = "";
  return until(
    "the mesh to settle",
    async () => {
      const state = await read();
      const text = JSON.stringify(state);
      const same = state.inFlight === 0 && text === last;
      last = text;
      return same ? state : undefined;
    },
    timeoutMs,
  );
}
