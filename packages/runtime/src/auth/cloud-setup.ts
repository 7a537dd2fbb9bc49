// What makes a Stratus usable with the ordinary OpenStack workflow, done the same way by `npm start`
// and the test harness: the public endpoints of every REST edge in the identity's catalog, the
// demo user, and a clouds.yaml with password authentication (the CLI finds every endpoint in the
// catalog, none is given to it).
import type { KeystoneAdmin } from "./keystone-admin.js";
import { keptPassword } from "./service-users.js";

/** A REST edge as the catalog names it. */
export interface CatalogEntry {
  /** The catalog type clients look up: identity, compute, network. */
  type: string;
  /** The service's name (keystone, nova, neutron). */
  name: string;
  /** The public endpoint (compute: …/v2.1; network: the root; identity: …/v3). */
  url: string;
}

/**
 * The endpoints of Stratus's REST edges for `publicUrls` (compute, network and identity base
 * URLs): compute at /v2.1, network at its root, identity at /v3, and image at the compute edge's
 * /v2.1, which answers the Image API look-ups python-openstackclient makes for `--image`
 * (services/api/src/handlers/images.ts).
 */
export function stratusCatalog(publicUrls: {
  identity: string;
  compute: string;
  network: string;
}): CatalogEntry[] {
  const base = (url: string) => url.replace(/\/+$/, "");
  return [
    { type: "identity", name: "keystone", url: `${base(publicUrls.identity)}/v3` },
    { type: "compute", name: "nova", url: `${base(publicUrls.compute)}/v2.1` },
    { type: "network", name: "neutron", url: base(publicUrls.network) },
    { type: "image", name: "glance", url: `${base(publicUrls.compute)}/v2.1` },
  ];
}

/**
 * Registers each entry's public endpoint in `region` (the service made when its type has none, an
 * endpoint with another URL changed): idempotent, so every start says where the edges are now.
 */
export async function registerEndpoints(
  admin: KeystoneAdmin,
  region: string,
  entries: readonly CatalogEntry[],
): Promise<void> {
  for (const e of entries) {
    const { services } = await admin.request<{ services: { id: string }[] }>(
      "GET",
      `/services?type=${encodeURIComponent(e.type)}`,
    );
    const serviceId =
      services[0]?.id ??
      (
        await admin.request<{ service: { id: string } }>("POST", "/services", {
          service: { type: e.type, name: e.name, enabled: true },
        })
      ).service.id;
    const { endpoints } = await admin.request<{
      endpoints: { id: string; url: string; region_id: string | null }[];
    }>("GET", `/endpoints?service_id=${serviceId}&interface=public`);
    const same = endpoints.find((p) => p.region_id === region);
    if (!same) {
      await admin.request("POST", "/endpoints", {
        endpoint: {
          service_id: serviceId,
          interface: "public",
          region_id: region,
          url: e.url,
          enabled: true,
        },
      });
    } else if (same.url !== e.url) {
      await admin.request("PATCH", `/endpoints/${same.id}`, { endpoint: { url: e.url } });
    }
  }
}

/** The demo user: `demo`, a member of project `demo`, its password kept in `passwordFile`. */
export async function ensureDemoUser(admin: KeystoneAdmin, passwordFile: string): Promise<void> {
  await admin.ensureUser({
    name: "demo",
    password: keptPassword(passwordFile),
    project: "demo",
    roles: ["member"],
  });
}

/** One cloud of a clouds.yaml: a user of the Default domain with a password, scoped to a project. */
export interface CloudEntry {
  name: string;
  /** Keystone's v3 URL (…/v3). */
  authUrl: string;
  username: string;
  password: string;
  projectName: string;
  region: string;
}

/**
 * The clouds.yaml of `clouds` (openstacksdk's format): password auth, the region, the public
 * interface, identity API 3. Every value is a YAML double-quoted string (JSON's quoting).
 */
export function cloudsYaml(clouds: readonly CloudEntry[]): string {
  const q = (s: string) => JSON.stringify(s);
  const lines = ["clouds:"];
  for (const c of clouds) {
    lines.push(
      `  ${q(c.name)}:`,
      `    auth_type: "password"`,
      "    auth:",
      `      auth_url: ${q(c.authUrl)}`,
      `      username: ${q(c.username)}`,
      `      password: ${q(c.password)}`,
      `      project_name: ${q(c.projectName)}`,
      `      user_domain_name: "Default"`,
      `      project_domain_name: "Default"`,
      `    region_name: ${q(c.region)}`,
      `    interface: "public"`,
      `    identity_api_version: 3`,
    );
  }
  return `${lines.join("\n")}\n`;
}

/** The two clouds `npm start` writes: stratus-admin (admin in project admin) and stratus-demo. */
export function stratusClouds(o: {
  authUrl: string;
  region: string;
  adminPassword: string;
  demoPassword: string;
}): CloudEntry[] {
  return [
    {
      name: "stratus-admin",
      authUrl: o.authUrl,
      username: "admin",
      password: o.adminPassword,
      projectName: "admin",
      region: o.region,
    },
    {
      name: "stratus-demo",
      authUrl: o.authUrl,
      username: "demo",
      password: o.demoPassword,
      projectName: "demo",
      region: o.region,
    },
  ];
}
