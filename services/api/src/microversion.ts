// Compute API microversions: negotiation (OpenStack-API-Version / X-OpenStack-Nova-API-Version) and
// the one table of change points that handlers consult. Nothing else in the api compares versions
// by number: a handler asks `at(v, "getMeANetwork")`.
import { StratusError } from "@stratus/runtime";

export interface ApiVersion {
  readonly major: number;
  readonly minor: number;
}

export const MIN_VERSION: ApiVersion = { major: 2, minor: 1 };
/** Our maximum: every change up to here is implemented (or concerns an API we do not serve). */
export const MAX_VERSION: ApiVersion = { major: 2, minor: 51 };

export function formatVersion(v: ApiVersion): string {
  return `${v.major}.${v.minor}`;
}

export function compareVersions(a: ApiVersion, b: ApiVersion): number {
  return a.major - b.major || a.minor - b.minor;
}

const GRAMMAR = /^([1-9]\d*)\.([1-9]\d*|0)$/;

/** Parses "X.Y" (Nova's grammar: no leading zeros, both parts present); undefined when malformed. */
export function parseVersionString(s: string): ApiVersion | undefined {
  const m = GRAMMAR.exec(s);
  if (!m) return undefined;
  const major = Number(m[1]);
  const minor = Number(m[2]);
  if (!Number.isSafeInteger(major) || !Number.isSafeInteger(minor)) return undefined;
  return { major, minor };
}

const v = (s: string): ApiVersion => parseVersionString(s)!;

/**
 * Every microversion at which behaviour we serve changes. A feature is "on" from its version
 * (inclusive); removals are named for what disappears.
 */
export const CHANGES = {
  /** More OS-EXT-SRV-ATTR fields (reservation_id, launch_index, hostname, …) for admins. */
  extendedServerAttributes: v("2.3"),
  /** `locked` in the server view. */
  serverLocked: v("2.9"),
  /** `forced_down` in os-services. */
  serviceForcedDown: v("2.11"),
  /** `net_id` in os-virtual-interfaces (moot on Neutron, kept for the record). */
  vifNetId: v("2.12"),
  /** `host_status` in the server view (admin). */
  serverHostStatus: v("2.16"),
  /** Server `description` (create and view). */
  serverDescription: v("2.19"),
  /** `tags` in the server view. */
  serverTags: v("2.26"),
  /** `tag` on networks[] entries at create. */
  nicTags: v("2.32"),
  /** os-hypervisors limit/marker paging. */
  hypervisorPaging: v("2.33"),
  /** The proxy APIs (images, os-networks, …) answer 404. */
  proxyApisRemoved: v("2.36"),
  /** GET /limits drops floating IPs, security groups and rules. */
  networkLimitsRemoved: v("2.36"),
  /** `networks` required; "auto" / "none"; network uuid must be a UUID; NIC tags lost (bug). */
  getMeANetwork: v("2.37"),
  /** An unknown `status` filter on server lists is a 400 instead of an empty list. */
  strictStatusFilter: v("2.38"),
  /** `maxImageMeta` dropped from limits. */
  imageMetaLimitRemoved: v("2.39"),
  /** NIC tags allowed again. */
  nicTagsRestored: v("2.42"),
  /** os-virtual-interfaces (and add/remove fixed/floating IP actions) answer 404. */
  virtualInterfacesRemoved: v("2.44"),
  /** The full flavor embedded in the server view. */
  embeddedFlavor: v("2.47"),
  /** Non-admins see the events of an instance action. */
  actionEventsForOwners: v("2.51"),
} as const satisfies Record<string, ApiVersion>;

export type Change = keyof typeof CHANGES;

/** Whether the change is in effect at version `ver`. */
export function at(ver: ApiVersion, change: Change): boolean {
  return compareVersions(ver, CHANGES[change]) >= 0;
}

export const VERSION_HEADER = "openstack-api-version";
export const LEGACY_VERSION_HEADER = "x-openstack-nova-api-version";

type HeaderValue = string | string[] | undefined;

const joined = (h: HeaderValue): string | undefined => (Array.isArray(h) ? h.join(",") : h);

/** The compute entry of OpenStack-API-Version ("compute 2.37, placement 1.10"); the last one wins. */
function computeEntry(header: string): string | undefined {
  let found: string | undefined;
  for (const part of header.split(",")) {
    const words = part.trim().split(/\s+/);
    if (words.length >= 1 && words[0]!.toLowerCase() === "compute") {
      found = words.slice(1).join(" ");
    }
  }
  return found;
}

/**
 * The version a request asks for. No header → the minimum. "latest" → our maximum. Malformed →
 * 400; outside [min, max] → 406.
 */
export function negotiateVersion(headers: { standard?: HeaderValue; legacy?: HeaderValue }): ApiVersion {
  let requested: string | undefined;
  const standard = joined(headers.standard);
  if (standard !== undefined) requested = computeEntry(standard);
  if (requested === undefined) {
    const legacy = joined(headers.legacy);
    if (legacy !== undefined) {
      const parts = legacy.split(",");
      requested = parts[parts.length - 1]!.trim();
    }
  }
  if (requested === undefined) return MIN_VERSION;
  if (requested.toLowerCase() === "latest") return MAX_VERSION;
  const parsed = parseVersionString(requested);
  if (!parsed) {
    throw new StratusError(
      "invalid_input",
      `API Version String ${requested} is of invalid format. Must be of format MajorNum.MinorNum.`,
    );
  }
  if (compareVersions(parsed, MIN_VERSION) < 0 || compareVersions(parsed, MAX_VERSION) > 0) {
    throw new StratusError(
      "version_not_acceptable",
      `Version ${requested} is not supported by the API. Minimum is ${formatVersion(MIN_VERSION)} and maximum is ${formatVersion(MAX_VERSION)}.`,
    );
  }
  return parsed;
}
