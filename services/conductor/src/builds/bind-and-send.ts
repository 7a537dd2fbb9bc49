// Steps 3 and 4, binding and spawning: the ports bound to the chosen host (deferred ports take
// their address from its segment now, design.md §2.4), then the durable BuildCommand (§2.5), then
// one write: the phase, the command sent, the addresses, the bind event, and whatever the run left
// unrecorded (UnrecordedOutcome, which says how a run that dies before this write is recovered).
// The lease is given up until the build timeout: the result takes it from there. Binding again
// to the same host changes nothing, so a later run may bind and send again.
import type { ServerAddressRecord } from "../compute/servers.js";
import { type BuildRow, type ServerColumns, type StepEvent, stepEvent } from "./build.js";
import { announce, type BuildContext } from "./build-context.js";
import type { BuildRun } from "./build-run.js";
import type { Ports, PortView } from "./peers.js";

export async function bindAndSend(ctx: BuildContext, run: BuildRun): Promise<void> {
  const b = run.row;
  const started = new Date();
  const host = b.selected?.host ?? b.host;
  const bound = await Promise.all(b.ports.map((p) => ctx.ports.bind(p.portId, host)));
  // The server's addresses are known once its ports are bound (Nova's network info cache is
  // filled at the same point): recorded with the build command, so the result needs no lookup.
  const addresses = await addressesOf(
    ctx.ports,
    b,
    bound.filter((p): p is PortView => p !== undefined),
  );
  await send(
    ctx,
    run,
    host,
    b.ports.length ? stepEvent("conductor_bind_ports", started, true, host) : undefined,
    b.ports.length ? { addresses } : {},
  );
}

async function send(
  ctx: BuildContext,
  run: BuildRun,
  host: string,
  event: StepEvent | undefined,
  server: Partial<ServerColumns>,
): Promise<void> {
  const b = run.row;
  const f = b.flavor;
  await ctx.commands.build({
    serverId: b.server_id,
    host,
    attempt: b.attempt,
    portIds: b.ports.map((p) => p.portId),
    vcpus: f.vcpus,
    memoryMb: f.ramMb,
    diskGb: f.diskGb,
    imageRef: b.image_ref,
    metadata: b.metadata,
    name: b.name,
  });
  const now = new Date();
  await ctx.store.write(run, {
    build: { phase: "spawning", command_sent: true, sent_at: now },
    server: b.phase === "spawning" ? server : { ...server, task_state: "spawning" },
    event,
    release: true,
    leaseUntil: new Date(now.getTime() + ctx.buildTimeoutMs),
  });
  announce(ctx, b, "building", "spawning");
}

async function addressesOf(ports: Ports, b: BuildRow, bound: PortView[]): Promise<ServerAddressRecord[]> {
  if (!b.ports.length) return [];
  const out: ServerAddressRecord[] = [];
  for (const slot of b.ports) {
    const port = bound.find((p) => p.id === slot.portId);
    if (!port) continue;
    const info = await ports.network(port.networkId);
    for (const ip of port.fixedIps) {
      out.push({
        networkId: port.networkId,
        networkName: info.name,
        ipAddress: ip.ipAddress,
        version: ip.ipAddress.includes(":") ? 6 : 4,
        macAddress: port.macAddress,
        portId: port.id,
        type: "fixed",
      });
    }
  }
  return out;
}
