// The Networking API extensions this edge implements: the one table /v2.0/extensions lists.
// Clients decide what to send by these aliases, so an alias is here exactly when what it adds is
// served (its attributes in the views, its resources routed, its rules enforced by the owner).
// Add a row when a resource or attribute is implemented; never list one that is not.

export interface Extension {
  alias: string;
  name: string;
  description: string;
  /** Neutron's timestamp of the extension's definition. */
  updated: string;
}

export const EXTENSIONS: readonly Extension[] = [
  {
    alias: "project-id",
    name: "project_id field enabled",
    description: "Extension that indicates that project_id field is enabled.",
    updated: "2016-09-09T09:09:09-09:09",
  },
  {
    alias: "standard-attr-description",
    name: "standard-attr-description",
    description: "Extension to add descriptions to standard attributes",
    updated: "2016-02-10T10:00:00-00:00",
  },
  {
    alias: "standard-attr-timestamp",
    name: "Resource timestamps",
    description:
      "Adds created_at and updated_at fields to all Neutron resources that have Neutron standard attributes.",
    updated: "2016-09-12T10:00:00-00:00",
  },
  {
    alias: "standard-attr-revisions",
    name: "Resource revision numbers",
    description: "This extension will display the revision number of neutron resources.",
    updated: "2016-04-11T10:00:00-00:00",
  },
  {
    alias: "sorting",
    name: "Sorting support",
    description: "Extension that indicates that sorting is enabled.",
    updated: "2016-06-12T00:00:00-00:00",
  },
  {
    alias: "pagination",
    name: "Pagination support",
    description: "Extension that indicates that pagination is enabled.",
    updated: "2016-06-12T00:00:00-00:00",
  },
  {
    alias: "filter-validation",
    name: "Filter parameters validation",
    description: "Provides validation on filter parameters.",
    updated: "2018-03-21T10:00:00-00:00",
  },
  {
    alias: "provider",
    name: "Provider Network",
    description: "Expose mapping of virtual networks to physical networks",
    updated: "2012-09-07T10:00:00-00:00",
  },
  {
    alias: "multi-provider",
    name: "Multi Provider Network",
    description: "Expose mapping of virtual networks to multiple physical networks",
    updated: "2013-06-27T10:00:00-00:00",
  },
  {
    alias: "external-net",
    name: "Neutron external network",
    description: "Adds external network attribute to network resource.",
    updated: "2013-01-14T10:00:00-00:00",
  },
  {
    alias: "net-mtu",
    name: "Network MTU",
    description: "Provides MTU attribute for a network resource.",
    updated: "2015-03-25T10:00:00-00:00",
  },
  {
    alias: "net-mtu-writable",
    name: "Network MTU (writable)",
    description: "Provides a writable MTU attribute for a network resource.",
    updated: "2017-07-12T00:00:00-00:00",
  },
  {
    alias: "l2_adjacency",
    name: "L2 Adjacency",
    description: "Display L2 Adjacency for Neutron Networks.",
    updated: "2016-04-12T16:00:00-00:00",
  },
  {
    alias: "segment",
    name: "Segment",
    description: "Segments extension.",
    updated: "2016-02-24T17:00:00-00:00",
  },
  {
    alias: "subnet-segmentid-writable",
    name: "Subnet SegmentID (writable)",
    description: "Provides a writable segment_id attribute for a subnet resource.",
    updated: "2018-03-12T00:00:00-00:00",
  },
  {
    alias: "subnet_allocation",
    name: "Subnet Allocation",
    description: "Enables allocation of subnets from a subnet pool",
    updated: "2015-03-30T10:00:00-00:00",
  },
  {
    alias: "default-subnetpools",
    name: "Default Subnetpools",
    description: "Provides ability to mark and use a subnetpool as the default.",
    updated: "2016-02-18T18:00:00-00:00",
  },
  {
    alias: "ip_allocation",
    name: "IP Allocation",
    description: "IP allocation extension.",
    updated: "2016-06-10T23:00:00-00:00",
  },
  {
    alias: "binding",
    name: "Port Binding",
    description: "Expose port bindings of a virtual port to external application",
    updated: "2014-02-03T10:00:00-00:00",
  },
  {
    alias: "router",
    name: "Neutron L3 Router",
    description:
      "Router abstraction for basic L3 forwarding between L2 Neutron networks and access to external networks via a NAT gateway.",
    updated: "2012-07-20T10:00:00-00:00",
  },
  {
    alias: "ext-gw-mode",
    name: "Neutron L3 Configurable external gateway mode",
    description:
      "Extension of the router abstraction for specifying whether SNAT should occur on the external gateway",
    updated: "2013-03-28T10:00:00-00:00",
  },
  {
    alias: "auto-allocated-topology",
    name: "Auto Allocated Topology Services",
    description: "Auto Allocated Topology Services.",
    updated: "2016-01-01T00:00:00-00:00",
  },
  {
    alias: "quotas",
    name: "Quota management support",
    description: "Expose functions for quotas management per project",
    updated: "2012-07-29T10:00:00-00:00",
  },
  {
    alias: "quota_details",
    name: "Quota details management support",
    description: "Expose functions for quotas usage statistics per project",
    updated: "2017-02-10T10:00:00-00:00",
  },
];

/** The table by alias. */
export function extensionByAlias(alias: string): Extension | undefined {
  return EXTENSIONS.find((e) => e.alias === alias);
}

/** Neutron's view of an extension. */
export function extensionView(e: Extension) {
  return { alias: e.alias, name: e.name, description: e.description, updated: e.updated, links: [] };
}
