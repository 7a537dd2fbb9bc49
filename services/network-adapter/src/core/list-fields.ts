// The public fields of each resource as lists filter and sort on them (list-query.ts), named as
// the Networking API names them; the SQL is over the alias each resource's loader uses.
import { invalidInput } from "@stratus/runtime";
import { parseIp } from "../ipam/ipv4.js";
import { type Field, type FieldMap, filterValue, type ListedResource, type SqlParams } from "./list-query.js";

const column = (name: string, type: Field["type"], opts: Pick<Field, "unsortable"> = {}): Field => ({
  sql: (a) => `${a}.${name}`,
  type,
  ...opts,
});

/** The attributes every resource has (Neutron's standard attributes), and its project. */
const standard: FieldMap = {
  id: column("id", "uuid"),
  name: column("name", "text"),
  description: column("description", "text"),
  created_at: column("created_at", "timestamp"),
  updated_at: column("updated_at", "timestamp"),
  revision_number: column("revision_number", "int"),
  // Neutron's changed_since: changed at or after the time given.
  changed_since: {
    sql: (a) => `${a}.updated_at`,
    type: "timestamp",
    filter: (a, values, params) =>
      `${a}.updated_at >= ${params.add(filterValue("changed_since", "timestamp", values.at(-1)!), "::timestamptz")}`,
  },
};

const owned: FieldMap = {
  project_id: column("project_id", "text"),
  tenant_id: column("project_id", "text"),
};

/** A filter on a column of the rows of `table` that belong to the resource (by `key`). */
function related(table: string, key: string, col: string, type: Field["type"], name: string): Field {
  return {
    sql: () => "",
    type,
    filter: (a, values, params) => {
      const typed = values.map((v) => filterValue(name, type, v));
      const test =
        type === "uuid"
          ? `r.${col}::text = ANY(${params.add(typed, "::text[]")})`
          : `r.${col} = ANY(${params.add(typed, type === "int" ? "::bigint[]" : "::text[]")})`;
      return `EXISTS (SELECT 1 FROM ${table} r WHERE r.${key} = ${a}.id AND ${test})`;
    },
  };
}

export const NETWORK_LIST: ListedResource = {
  table: "networks",
  alias: "n",
  what: "Network",
  fields: {
    ...standard,
    ...owned,
    shared: column("shared", "bool"),
    "router:external": column("router_external", "bool"),
    is_default: column("is_default", "bool"),
    mtu: column("mtu", "int"),
    status: column("status", "text"),
    admin_state_up: column("admin_state_up", "bool"),
    "provider:network_type": related(
      "segments",
      "network_id",
      "network_type",
      "text",
      "provider:network_type",
    ),
    "provider:physical_network": related(
      "segments",
      "network_id",
      "physical_network",
      "text",
      "provider:physical_network",
    ),
    "provider:segmentation_id": related(
      "segments",
      "network_id",
      "segmentation_id",
      "int",
      "provider:segmentation_id",
    ),
    subnets: related("subnets", "network_id", "id", "uuid", "subnets"),
  },
};

export const SEGMENT_LIST: ListedResource = {
  table: "segments",
  alias: "s",
  what: "Segment",
  fields: {
    ...standard,
    network_id: column("network_id", "uuid"),
    network_type: column("network_type", "text"),
    physical_network: column("physical_network", "text"),
    segmentation_id: column("segmentation_id", "int"),
    segment_index: column("segment_index", "int"),
  },
  // A network's segments in the order they were made (one transaction may make several).
  defaultOrder: ["created_at", "segment_index"],
};

export const SUBNET_LIST: ListedResource = {
  table: "subnets",
  alias: "s",
  what: "Subnet",
  fields: {
    ...standard,
    ...owned,
    network_id: column("network_id", "uuid"),
    segment_id: column("segment_id", "uuid", { unsortable: true }),
    cidr: column("cidr", "text"),
    ip_version: column("ip_version", "int"),
    enable_dhcp: column("enable_dhcp", "bool"),
    subnetpool_id: column("subnetpool_id", "uuid", { unsortable: true }),
    gateway_ip: {
      sql: (a) => `${a}.gateway_ip`,
      type: "int",
      unsortable: true,
      filter: (a, values, params) =>
        `${a}.gateway_ip = ANY(${params.add(values.map(ipValue), "::bigint[]")})`,
    },
  },
};

export const SUBNET_POOL_LIST: ListedResource = {
  table: "subnet_pools",
  alias: "sp",
  what: "Subnet pool",
  fields: {
    ...standard,
    ...owned,
    ip_version: column("ip_version", "int"),
    is_default: column("is_default", "bool"),
    shared: column("shared", "bool"),
    default_prefixlen: column("default_prefixlen", "int"),
    min_prefixlen: column("min_prefixlen", "int"),
    max_prefixlen: column("max_prefixlen", "int"),
  },
};

export const ROUTER_LIST: ListedResource = {
  table: "routers",
  alias: "r",
  what: "Router",
  fields: {
    ...standard,
    ...owned,
    status: column("status", "text"),
    admin_state_up: column("admin_state_up", "bool"),
  },
};

export const PORT_LIST: ListedResource = {
  table: "ports",
  alias: "p",
  what: "Port",
  fields: {
    ...standard,
    ...owned,
    network_id: column("network_id", "uuid"),
    mac_address: {
      sql: (a) => `${a}.mac_address`,
      type: "text",
      filter: (a, values, params) =>
        `${a}.mac_address = ANY(${params.add(
          values.map((v) => v.toLowerCase()),
          "::text[]",
        )})`,
    },
    device_id: column("device_id", "text"),
    device_owner: column("device_owner", "text"),
    status: column("status", "text"),
    admin_state_up: column("admin_state_up", "bool"),
    ip_allocation: column("ip_allocation", "text"),
    "binding:host_id": column("binding_host_id", "text"),
    "binding:vnic_type": column("binding_vnic_type", "text"),
    // Neutron's fixed_ips=ip_address=… / fixed_ips=subnet_id=…: the keys given must all match
    // one address of the port, each being one of its values.
    fixed_ips: { sql: () => "", type: "text", filter: fixedIpsFilter },
  },
};

/** An address given as a filter value, as stored (an integer), or invalid_input. */
function ipValue(text: string): number {
  try {
    return parseIp(text);
  } catch {
    throw invalidInput(`Invalid input for operation: '${text}' is not a valid IP address.`);
  }
}

function fixedIpsFilter(a: string, values: string[], params: SqlParams): string {
  const wanted = new Map<string, string[]>();
  for (const v of values) {
    const eq = v.indexOf("=");
    const key = eq < 0 ? "" : v.slice(0, eq);
    if (key !== "ip_address" && key !== "subnet_id") {
      throw invalidInput(`Invalid input for operation: '${v}' is not a valid fixed_ips filter.`);
    }
    wanted.set(key, [...(wanted.get(key) ?? []), v.slice(eq + 1)]);
  }
  const tests = [...wanted].map(([key, list]) =>
    key === "ip_address"
      ? `fa.ip = ANY(${params.add(list.map(ipValue), "::bigint[]")})`
      : `fa.subnet_id::text = ANY(${params.add(
          list.map((s) => s.toLowerCase()),
          "::text[]",
        )})`,
  );
  return `EXISTS (SELECT 1 FROM ip_allocations fa WHERE fa.port_id = ${a}.id AND ${tests.join(" AND ")})`;
}
