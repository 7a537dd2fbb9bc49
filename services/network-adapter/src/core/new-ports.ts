// Making port rows, for every path that makes them (the transaction and the statements gathered
// per turn): the values a CreatePort request gives its row, the INSERT that draws the MAC in the
// database when none was asked for, and drawing again when a drawn MAC was already on the network.
import type { CreatePortRequest } from "@stratus/contracts/network/v1";
import { cols } from "./columns.js";
import { type Caller, owningProject } from "./context.js";
import { type ColumnValues, MAC_DRAWS, RANDOM_MAC_SQL } from "./rules.js";
import { columns } from "./unnest.js";

type Row = Record<string, unknown>;

/** A CreatePort request and who asked. */
export interface NewPort {
  req: CreatePortRequest;
  caller: Caller;
}

/**
 * SQL: the requests of newPortColumns (parameters $1 to $12) as relation rows: network_id, id,
 * project_id, name, mac (null: draw one), device_id, device_owner, vnic, is_admin and
 * caller_project (the caller), description, admin_state_up, and k, the request's position from 1.
 */
export const NEW_PORT_REQUESTS_SQL = `SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::text[], $6::text[],
      $7::text[], $8::text[], $9::boolean[], $10::text[], $11::text[], $12::boolean[]) WITH ORDINALITY
      AS r(network_id, id, project_id, name, mac, device_id, device_owner, vnic, is_admin, caller_project,
           description, admin_state_up, k)`;

/** The parameters NEW_PORT_REQUESTS_SQL takes. */
export const NEW_PORT_COLUMNS = 12;

/** The parameters of NEW_PORT_REQUESTS_SQL for these requests, whose ports get these ids. */
export function newPortColumns(items: NewPort[], ids: string[]): unknown[][] {
  return columns(
    items.map(({ req, caller }, i) => [
      req.networkId.toLowerCase(),
      ids[i],
      owningProject(req.projectId, caller),
      req.name,
      req.macAddress ? req.macAddress.toLowerCase() : null,
      req.deviceId,
      req.deviceOwner,
      req.bindingVnicType || "normal",
      caller.isAdmin,
      caller.projectId,
      req.description,
      req.adminStateUp ?? true,
    ]),
    NEW_PORT_COLUMNS,
  );
}

/** SQL: the MAC of request `r`'s port: the one asked for, or one drawn now. */
export const portMacSql = (r: string) => `coalesce(${r}.mac, ${RANDOM_MAC_SQL})`;

/**
 * SQL: inserts the ports of `source` (request rows with their port_mac) with ip_allocation `mode`
 * (an SQL expression), and `values` for further columns (SQL expressions over `source`'s columns:
 * a port inserted already bound, boundNewPortValues), returning those inserted. A port whose MAC
 * is already on its network is not inserted (the unique key judges, no look-up first): MAC_TAKEN
 * for its request.
 */
export function insertPortsSql(source: string, mode: string, values: ColumnValues = []): string {
  const more = (pick: (cv: ColumnValues[number]) => string) => values.map((cv) => `, ${pick(cv)}`).join("");
  return `INSERT INTO ports (id, network_id, project_id, name, mac_address, device_id, device_owner, ip_allocation,
      binding_vnic_type, description, admin_state_up${more(([c]) => c)})
    SELECT id, network_id, project_id, name, port_mac, device_id, device_owner, ${mode}, vnic, description,
      admin_state_up${more(([, v]) => v)} FROM ${source}
    ON CONFLICT (network_id, mac_address) DO NOTHING RETURNING ${cols("ports")}`;
}

/** A request whose port was not inserted because its MAC was already on the network. */
export const MAC_TAKEN = Symbol("MAC already on the network");

/** Per request: its new port's row, MAC_TAKEN, or null when it was not made for another reason. */
export type Made = Row | typeof MAC_TAKEN | null;

/**
 * Runs `insert` for the requests, then again for those whose drawn MAC was taken (up to MAC_DRAWS
 * runs): a new draw each time. A request that asked for its MAC stays MAC_TAKEN. An error is
 * thrown on if no port was made before it; after that, earlier runs' ports are made for good and
 * the requests still waiting are left not made (null).
 */
export async function insertDrawingMacs(
  items: NewPort[],
  insert: (items: NewPort[]) => Promise<Made[]>,
): Promise<Made[]> {
  const made: Made[] = items.map(() => null);
  let waiting = items.map((_, i) => i);
  for (let draw = 0; draw < MAC_DRAWS && waiting.length; draw++) {
    let got: Made[];
    try {
      got = await insert(waiting.map((i) => items[i]!));
    } catch (err) {
      if (made.every((m) => m === null || m === MAC_TAKEN)) throw err;
      for (const i of waiting) made[i] = null;
      break;
    }
    const again: number[] = [];
    for (const [j, i] of waiting.entries()) {
      made[i] = got[j]!;
      if (got[j] === MAC_TAKEN && !items[i]!.req.macAddress) again.push(i);
    }
    waiting = again;
  }
  return made;
}
