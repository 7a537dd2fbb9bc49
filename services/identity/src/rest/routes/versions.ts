// Version discovery: GET / (300, the versions) and GET /v3 (the v3 document), as Keystone.
const MEDIA_TYPE = "application/vnd.openstack.identity-v3+json";

function v3(baseUrl: string) {
  return {
    id: "v3.14",
    status: "stable",
    updated: "2020-04-07T00:00:00Z",
    links: [{ rel: "self", href: `${baseUrl}/v3/` }],
    "media-types": [{ base: "application/json", type: MEDIA_TYPE }],
  };
}

export function versionsDocument(baseUrl: string) {
  return { versions: { values: [v3(baseUrl)] } };
}

export function versionDocument(baseUrl: string) {
  return { version: v3(baseUrl) };
}
