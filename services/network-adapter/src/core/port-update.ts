// UpdatePort, as the Networking API updates a port: its plain attributes; its addresses (Neutron's
// way of reading a new fixed_ips list: what it names and the port holds is kept, what it names
// anew is taken, the rest released; not while the port is bound, our rule); its MAC (admin,
// unbound ports only); and its binding, which binds (or unbinds) exactly as BindPort does, with
// Neutron's conflicts for a host that reaches no usable segment.
import { PortChange } from "@stratus/contracts/events/v1";
import { type FixedIp, IpAllocation, type UpdatePortRequest } from "@stratus/contracts/network/v1";
import { conflict, invalidInput, StratusError } from "@stratus/runtime";
import { parseIp } from "../ipam/ipv4.js";
import { bindPort, unbindPort } from "./binding.js";
import type { Tx } from "./context.js";
import { releasePortIps } from "./ipam.js";
import type { PortRec } from "./model.js";
import { getNetwork } from "./network-access.js";
import { noteReservedChange, portEvent } from "./port-events.js";
import { allocateFixedIps, getPort } from "./ports.js";
import { isRouterPort, MAC_PATTERN, revisedSql } from "./rules.js";

type Held = { subnetId: string; ipAddress: string };

/**
 * Neutron's reading of a new fixed_ips list against the addresses a port holds: an entry naming
 * an address the port holds keeps it; one naming only a subnet keeps an address the port holds
 * there, if any is left; every other entry is taken anew; what no entry keeps is released.
 */
export function fixedIpsChange(
  held: Held[],
  wanted: FixedIp[],
): { keep: Held[]; add: FixedIp[]; remove: Held[] } {
  const left = [...held];
  const keep: Held[] = [];
  const add: FixedIp[] = [];
  const take = (i: number) => keep.push(...left.splice(i, 1));
  for (const f of wanted.filter((w) => w.ipAddress)) {
    const ip = parseIp(f.ipAddress);
    const i = left.findIndex(
      (h) => parseIp(h.ipAddress) === ip && (!f.subnetId || f.subnetId.toLowerCase() === h.subnetId),
    );
    if (i >= 0) take(i);
    else add.push(f);
  }
  for (const f of wanted.filter((w) => !w.ipAddress)) {
    const i = left.findIndex((h) => h.subnetId === f.subnetId.toLowerCase());
    if (i >= 0) take(i);
    else add.push(f);
  }
  return { keep, add, remove: left };
}

/** Changes the port's addresses to `wanted`; returns the subnets whose addresses changed. */
async function changeFixedIps(tx: Tx, port: PortRec, wanted: FixedIp[]): Promise<string[]> {
  const { keep, add, remove } = fixedIpsChange(port.fixedIps, wanted);
  if (!add.length && !remove.length) return [];
  if (port.bindingHostId) {
    throw conflict(
      `Port ${port.id} is bound to host ${port.bindingHostId}: unbind it before changing its addresses`,
    );
  }
  if (port.ipAllocation === IpAllocation.NONE && add.length) {
    throw invalidInput(`Port ${port.id} was created without IP allocation`);
  }
  const released = await releasePortIps(
    tx,
    port.id,
    remove.map((r) => ({ subnetId: r.subnetId, ip: parseIp(r.ipAddress) })),
  );
  const got = add.length
    ? await allocateFixedIps(tx, await getNetwork(tx, port.networkId), port.id, add, { held: keep })
    : [];
  return [...released.map((r) => r.subnetId), ...got.map((g) => g.subnetId)];
}

/** A new MAC for an unbound port (admin): well-formed, and not on the network already. */
async function changeMac(tx: Tx, port: PortRec, mac: string): Promise<void> {
  if (!tx.caller.isAdmin) throw new StratusError("forbidden", "only an admin may change mac_address");
  const next = mac.toLowerCase();
  if (next === port.macAddress) return;
  if (!MAC_PATTERN.test(mac)) throw invalidInput(`'${mac}' is not a valid MAC address`);
  if (port.bindingHostId) {
    throw conflict(
      `Unable to complete operation on port ${port.id}, port is already bound, port type: ${port.bindingVifType}, old_mac ${port.macAddress}, new_mac ${next}.`,
    );
  }
  const [taken] = await tx.q.query("SELECT 1 FROM ports WHERE network_id = $1 AND mac_address = $2", [
    port.networkId,
    next,
  ]);
  if (taken) {
    throw conflict(
      `Unable to complete operation for network ${port.networkId}. The mac address ${next} is in use.`,
    );
  }
  await tx.q.query("UPDATE ports SET mac_address = $2 WHERE id = $1", [port.id, next]);
}

export async function updatePort(tx: Tx, req: UpdatePortRequest): Promise<PortRec> {
  const port = await getPort(tx, req.id, { forUpdate: true });
  const admin = tx.caller.isAdmin;
  if (!admin && (req.bindingHostId !== undefined || req.updateBindingProfile)) {
    throw new StratusError("forbidden", "only an admin may change binding:host_id or binding:profile");
  }
  const ownerChange =
    (req.deviceId ?? port.deviceId) !== port.deviceId ||
    (req.deviceOwner ?? port.deviceOwner) !== port.deviceOwner;
  if (ownerChange && (isRouterPort(port.deviceOwner) || isRouterPort(req.deviceOwner ?? ""))) {
    throw conflict(`Port ${port.id}: a router's ports are attached and detached through the router`);
  }
  await tx.q.query(
    `UPDATE ports SET name = COALESCE($2, name), description = COALESCE($3, description),
       admin_state_up = COALESCE($4, admin_state_up), device_id = COALESCE($5, device_id),
       device_owner = COALESCE($6, device_owner),
       binding_profile = CASE WHEN $7 THEN $8::jsonb ELSE binding_profile END, ${revisedSql("ports")}
     WHERE id = $1`,
    [
      port.id,
      req.name ?? null,
      req.description ?? null,
      req.adminStateUp ?? null,
      req.deviceId ?? null,
      req.deviceOwner ?? null,
      req.updateBindingProfile,
      JSON.stringify(req.bindingProfile),
    ],
  );
  if (req.macAddress !== undefined) await changeMac(tx, port, req.macAddress);
  const changed = req.updateFixedIps ? await changeFixedIps(tx, port, req.fixedIps) : [];
  let updated = await getPort(tx, port.id);
  await noteReservedChange(tx, updated.deviceOwner, changed);
  if (updated.deviceOwner !== port.deviceOwner) {
    // Whether its addresses count as reserved in placement may have changed.
    await noteReservedChange(
      tx,
      "network:",
      updated.fixedIps.map((f) => f.subnetId),
    );
  }
  portEvent(tx, PortChange.UPDATED, updated);
  if (req.bindingHostId !== undefined && req.bindingHostId !== port.bindingHostId) {
    updated = req.bindingHostId
      ? (
          await bindPort(
            tx,
            { portId: port.id, host: req.bindingHostId, bindingProfile: updated.bindingProfile ?? {} },
            { refusal: "conflict" },
          )
        ).port
      : await unbindPort(tx, { portId: port.id, clearDevice: false });
  }
  return updated;
}
