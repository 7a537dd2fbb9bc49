// Version discovery: GET / (all versions), GET /v2.1 (this version), 300 choices elsewhere.
import { formatVersion, MAX_VERSION, MIN_VERSION } from "../microversion.js";

const MEDIA_TYPES = [
  { base: "application/json", type: "application/vnd.openstack.compute+json;version=2.1" },
];

function entries(hostUrl: string, suffix = "") {
  return [
    {
      id: "v2.0",
      status: "SUPPORTED",
      version: "",
      min_version: "",
      updated: "2011-01-21T11:33:21Z",
      links: [{ rel: "self", href: `${hostUrl}/v2/${suffix}` }],
    },
    {
      id: "v2.1",
      status: "CURRENT",
      version: formatVersion(MAX_VERSION),
      min_version: formatVersion(MIN_VERSION),
      updated: "2013-07-23T11:33:21Z",
      links: [{ rel: "self", href: `${hostUrl}/v2.1/${suffix}` }],
    },
  ];
}

export function versionsDocument(hostUrl: string) {
  return { versions: entries(hostUrl) };
}

export function versionDocument(hostUrl: string, id: "v2.0" | "v2.1") {
  const entry = entries(hostUrl).find((e) => e.id === id)!;
  return {
    version: {
      ...entry,
      links: [...entry.links, { rel: "describedby", type: "text/html", href: "https://docs.openstack.org/" }],
      "media-types": MEDIA_TYPES,
    },
  };
}

export function choicesDocument(hostUrl: string, path: string) {
  return {
    choices: entries(hostUrl, path.replace(/^\/+/, "")).map((e) => ({
      id: e.id,
      status: e.status,
      links: e.links,
      "media-types": MEDIA_TYPES,
    })),
  };
}
