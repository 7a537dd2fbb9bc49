// Finding a network as the caller may see it (rules.ts: networkVisibleSql), for reading, for
// changing (its own, or any for an admin) and for making a port on it.
import { notFound, StratusError } from "@stratus/runtime";
import type { Tx } from "./context.js";
import { checkId } from "./ids.js";
import { networkSubnetsJsonSql, type SubnetRow } from "./ipam.js";
import { jsonColumn, loadNetworks, type NetworkRec } from "./model.js";
import { callerParams, networkUsableSql, networkVisibleSql, routedNetworkSql } from "./rules.js";

/** SQL: network `alias` is visible to the transaction's caller, with its parameters from $first on. */
export function visibleNetworkSql(tx: Tx, alias: string, first: number): { sql: string; params: unknown[] } {
  const caller = callerParams(tx.caller, first);
  return { sql: networkVisibleSql(alias, caller.sql), params: caller.params };
}

export async function getNetwork(
  tx: Tx,
  id: string,
  opts: { forUpdate?: boolean } = {},
): Promise<NetworkRec> {
  const nid = checkId(id, "Network");
  if (opts.forUpdate) await tx.q.query("SELECT 1 FROM networks WHERE id = $1 FOR UPDATE", [nid]);
  const vis = visibleNetworkSql(tx, "n", 2);
  const [net] = await loadNetworks(tx.q, `n.id = $1 AND ${vis.sql}`, [nid, ...vis.params]);
  if (!net) throw notFound(`Network ${id} could not be found`);
  return net;
}

/** A network the caller may change (its own, or any for admins). */
export async function getOwnNetwork(
  tx: Tx,
  id: string,
  opts: { forUpdate?: boolean } = {},
): Promise<NetworkRec> {
  const net = await getNetwork(tx, id, opts);
  if (!tx.caller.isAdmin && net.projectId !== tx.caller.projectId) {
    throw new StratusError("forbidden", `Network ${id} belongs to another project`);
  }
  return net;
}

export interface NetworkBrief {
  id: string;
  projectId: string;
  /** The caller may make ports on it (rules.ts: networkUsableSql). */
  usable: boolean;
  routed: boolean;
  /** Its subnets (ipam rows), in the order addresses are drawn from them. */
  subnets: SubnetRow[];
}

/** What port creation needs of a visible network and its subnets, in one query. */
export async function getNetworkBrief(tx: Tx, id: string): Promise<NetworkBrief> {
  const nid = checkId(id, "Network");
  const caller = callerParams(tx.caller, 2);
  const [row] = await tx.q.query<{
    id: string;
    project_id: string;
    usable: boolean;
    routed: boolean;
    subnets: unknown;
  }>(
    `SELECT n.id, n.project_id, ${networkUsableSql("n", caller.sql)} AS usable, ${routedNetworkSql("n.id")} AS routed,
       ${networkSubnetsJsonSql("n.id")} AS subnets
     FROM networks n WHERE n.id = $1 AND ${networkVisibleSql("n", caller.sql)}`,
    [nid, ...caller.params],
  );
  if (!row) throw notFound(`Network ${id} could not be found`);
  return {
    id: row.id,
    projectId: row.project_id,
    usable: row.usable,
    routed: row.routed,
    subnets: jsonColumn<SubnetRow[]>(row.subnets),
  };
}
