// Step 1, allocating: the server's ports before it is scheduled (design.md §2.2). `auto` takes the
// project's auto-allocated network; each requested network gets a port the conductor makes
// (deferred address on a routed network), each requested port is claimed for the server. The
// outcome is not written here: the run defers it to the build's next write (UnrecordedOutcome).
import type { PortSlot } from "./build.js";
import type { BuildContext } from "./build-context.js";
import type { BuildRun } from "./build-run.js";
import type { Ports, PortView } from "./peers.js";
import { portsMadeEarlier, slotName } from "./unrecorded-outcome.js";

export async function allocate(ctx: BuildContext, run: BuildRun): Promise<void> {
  const b = run.row;
  const started = new Date();
  let requested = b.requested;
  if (b.network_mode === "none") requested = [];
  if (b.network_mode === "auto" && requested.length === 0) {
    const networkId = await ctx.ports.autoAllocatedNetwork(b.project_id);
    requested = [{ networkId, portId: "", fixedIp: "", tag: "" }];
  }
  if (requested.length === 0) {
    // Nothing to allocate and nothing to record: straight on to scheduling.
    b.phase = "scheduling";
    return;
  }
  const ports = [...b.ports];
  let earlier: PortView[] | undefined;
  for (let slot = 0; slot < requested.length; slot++) {
    if (ports.some((p) => p.slot === slot)) continue;
    const want = requested[slot]!;
    let entry: PortSlot;
    if (want.portId) {
      const port = await ctx.ports.claim(want.portId, b.server_id, b.project_id);
      const info = await ctx.ports.network(port?.networkId ?? "");
      entry = {
        slot,
        portId: want.portId,
        networkId: port?.networkId ?? "",
        created: false,
        routed: info.routed,
        segmentIds: info.segmentIds,
        ...(await heldSegment(ctx.ports, info.routed, port)),
      };
    } else {
      const info = await ctx.ports.network(want.networkId);
      earlier ??= await portsMadeEarlier(ctx.ports, b);
      let port = earlier.find((p) => p.name === slotName(b.server_id, slot));
      port ??= await ctx.ports.create({
        networkId: want.networkId,
        projectId: b.project_id,
        name: slotName(b.server_id, slot),
        deviceId: b.server_id,
        fixedIp: want.fixedIp,
      });
      entry = {
        slot,
        portId: port?.id ?? "",
        networkId: want.networkId,
        created: true,
        routed: info.routed,
        segmentIds: info.segmentIds,
        // An address asked for pins the host's segment. Any other address a port we made holds
        // came from a bind of an earlier run whose schedule went unrecorded: the build still
        // claims one from the segment of the host it goes to, and binding there moves the
        // address if that segment differs.
        ...(want.fixedIp ? await heldSegment(ctx.ports, info.routed, port) : {}),
      };
    }
    ports.push(entry);
  }
  // The server's task_state is already "scheduling" from its creation.
  run.defer({
    step: "allocated",
    requested,
    ports,
    event: { event: "conductor_allocate_networks", startedAt: started, finishedAt: new Date(), ok: true },
  });
}

/** The segment of the address a routed port already holds: the host must be on it. */
async function heldSegment(
  ports: Ports,
  routed: boolean,
  port: PortView | undefined,
): Promise<{ heldSegment?: string }> {
  const subnetId = port?.fixedIps[0]?.subnetId;
  if (!routed || !subnetId) return {};
  const segment = await ports.segmentOfSubnet(subnetId);
  return segment ? { heldSegment: segment } : {};
}
