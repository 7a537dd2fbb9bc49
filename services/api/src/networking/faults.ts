// The Networking API's error bodies: {"NeutronError": {"type", "message", "detail": ""}}, with
// Neutron's exception names as types. The owner (the network-adapter) throws StratusErrors with
// Neutron's messages; the type is derived here, once, from the kind and the message (TYPE_RULES),
// else from the status. Statuses follow Neutron where they differ from the mesh's kinds: a quota
// exceeded is 409 OverQuota, an exhausted address space 409 IpAddressGenerationFailure.
import { isStratusError, type Logger } from "@stratus/runtime";
import { type RestResponse, restFault } from "@stratus/runtime/http";

/** Neutron's generic type for a status (webob's exception names). */
const STATUS_TYPES: Record<number, string> = {
  400: "HTTPBadRequest",
  401: "HTTPUnauthorized",
  403: "HTTPForbidden",
  404: "HTTPNotFound",
  405: "HTTPMethodNotAllowed",
  406: "HTTPNotAcceptable",
  409: "HTTPConflict",
  413: "HTTPRequestEntityTooLarge",
  415: "HTTPUnsupportedMediaType",
  500: "HTTPInternalServerError",
  501: "HTTPNotImplemented",
  503: "HTTPServiceUnavailable",
};

/** A kind and message pattern of the owner's errors → Neutron's exception name (first match). */
const TYPE_RULES: { kind: string; re: RegExp; type: string }[] = [
  { kind: "not_found", re: /^Network .*could not be found/, type: "NetworkNotFound" },
  { kind: "not_found", re: /^Subnet pool .*could not be found/, type: "SubnetPoolNotFound" },
  { kind: "not_found", re: /^Subnet .*could not be found/, type: "SubnetNotFound" },
  { kind: "not_found", re: /^Segment .*could not be found/, type: "SegmentNotFound" },
  { kind: "not_found", re: /^Port .*could not be found/, type: "PortNotFound" },
  { kind: "not_found", re: /^Router .*could not be found/, type: "RouterNotFound" },
  {
    kind: "not_found",
    re: /^Router .*(does not have an interface|has no interface)/,
    type: "RouterInterfaceNotFound",
  },
  { kind: "not_found", re: /^Quota for project/, type: "TenantQuotaNotFound" },
  { kind: "not_found", re: /auto-allocated topology/, type: "HTTPNotFound" },
  { kind: "conflict", re: /on network .*ports still in use/, type: "NetworkInUse" },
  { kind: "conflict", re: /on subnet .*IP allocation from this subnet/, type: "SubnetInUse" },
  { kind: "conflict", re: /^Segment .*cannot be deleted/, type: "SegmentInUse" },
  { kind: "conflict", re: /on subnet pool .*Other projects use it/, type: "SubnetPoolInUse" },
  { kind: "conflict", re: /^Router .*still has ports/, type: "RouterInUse" },
  { kind: "conflict", re: /^Unable to create the flat network/, type: "FlatNetworkInUse" },
  { kind: "conflict", re: /^Unable to create the network\. The VLAN/, type: "VlanIdInUse" },
  { kind: "conflict", re: /^Unable to create the network\. The tunnel ID/, type: "TunnelIdInUse" },
  { kind: "conflict", re: /^IP address .* already allocated/, type: "IpAddressAlreadyAllocated" },
  { kind: "conflict", re: /conflicts with allocation pool/, type: "GatewayConflictWithAllocationPools" },
  { kind: "conflict", re: /^Failed to allocate subnet/, type: "SubnetAllocationError" },
  {
    kind: "conflict",
    re: /^A default external network already exists/,
    type: "DefaultExternalNetworkExists",
  },
  { kind: "conflict", re: /^Deployment error/, type: "AutoAllocationFailure" },
  { kind: "conflict", re: /^Quota exceeded for resources/, type: "OverQuota" },
  { kind: "conflict", re: /cannot be deleted directly via the port API/, type: "ServicePortInUse" },
  { kind: "ip_exhausted", re: /^No more IP addresses/, type: "IpAddressGenerationFailure" },
  { kind: "ip_exhausted", re: /^Failed to allocate subnet/, type: "SubnetAllocationError" },
  { kind: "port_in_use", re: /./, type: "PortInUse" },
  { kind: "quota_exceeded", re: /./, type: "OverQuota" },
  { kind: "forbidden", re: /./, type: "PolicyNotAuthorized" },
  { kind: "invalid_input", re: /^Unable to delete subnet pool/, type: "SubnetPoolDeleteError" },
  { kind: "invalid_input", re: /^Invalid input for operation/, type: "InvalidInput" },
  { kind: "invalid_input", re: /^Bad \w+ request/, type: "BadRequest" },
  { kind: "invalid_input", re: /^IPv6 subnet/, type: "InvalidInput" },
];

/** Statuses Neutron gives where the mesh's kind maps elsewhere. */
const KIND_STATUS: Record<string, number> = { quota_exceeded: 409, ip_exhausted: 409, port_in_use: 409 };

/** An error this edge raises itself with Neutron's type (a bad query, an unknown extension). */
export class NeutronFault extends Error {
  constructor(
    readonly status: number,
    readonly type: string,
    message: string,
  ) {
    super(message);
  }
}

export const badRequest = (message: string) => new NeutronFault(400, "HTTPBadRequest", message);
export const notFound = (type: string, message: string) => new NeutronFault(404, type, message);

export function neutronError(type: string, message: string) {
  return { NeutronError: { type, message, detail: "" } };
}

/** The response for a failed request (5xx bodies say nothing of what failed inside). */
export function neutronFault(err: unknown, logger: Logger, requestId: string): RestResponse {
  if (err instanceof NeutronFault) {
    return { status: err.status, body: neutronError(err.type, err.message) };
  }
  const fault = restFault(err, {
    logger,
    requestId,
    service: "network",
    unexpected: "Request Failed: internal server error while processing your request.",
  });
  let status = fault.status;
  let type = STATUS_TYPES[status] ?? "HTTPInternalServerError";
  if (isStratusError(err) && status < 500) {
    status = KIND_STATUS[err.kind] ?? status;
    type =
      TYPE_RULES.find((r) => r.kind === err.kind && r.re.test(err.message))?.type ?? STATUS_TYPES[status]!;
  }
  return { status, body: neutronError(type, fault.message), headers: fault.headers };
}
