// keystone-manage bootstrap, run at start when an admin password is configured, idempotent: the
// default domain, the roles admin, member and reader (admin implies member implies reader), the
// admin project and user with the admin role on the project and on the system, and the identity
// service's endpoints in the catalog. An existing admin user gets the configured password again
// (and is enabled), so that a lost password is recovered by restarting with a new one.
import type { Logger } from "@stratus/runtime";
import type { PasswordHasher } from "./auth/password-hasher.js";
import type { Interface } from "./directory/catalog.js";
import type { Directory } from "./directory/directory.js";
import { DEFAULT_DOMAIN_ID } from "./directory/domains.js";
import type { RoleRecord } from "./directory/roles.js";
import type { Work } from "./tokens/revocation-log.js";

export interface BootstrapOptions {
  adminPassword: string;
  adminUsername: string;
  projectName: string;
  region: string;
  /** The identity endpoints to register, by interface (the public one at least). */
  endpoints: Partial<Record<Interface, string>>;
}

export const DEFAULT_ROLES = ["admin", "member", "reader"] as const;

export async function bootstrap(
  dir: Directory,
  hasher: PasswordHasher,
  options: BootstrapOptions,
  logger: Logger,
): Promise<void> {
  await dir.change(async (w) => {
    const { tx } = w;
    const domain =
      (await dir.domains.find(DEFAULT_DOMAIN_ID, tx)) ??
      (await dir.domains.create(w, {
        id: DEFAULT_DOMAIN_ID,
        name: "Default",
        description: "The default domain",
        enabled: true,
        tags: [],
        extra: {},
      }));
    const roles: RoleRecord[] = [];
    for (const name of DEFAULT_ROLES) {
      roles.push(
        (await dir.roles.findByName(name, tx)) ??
          (await dir.roles.create(w, { name, description: "", extra: {} })),
      );
    }
    const [admin, member, reader] = roles as [RoleRecord, RoleRecord, RoleRecord];
    await dir.roles.imply(w, admin.id, member.id);
    await dir.roles.imply(w, member.id, reader.id);

    const [projectRow] = await tx.query<{ id: string }>(
      "SELECT id FROM projects WHERE name = $1 AND domain_id = $2",
      [options.projectName, domain.id],
    );
    const projectId =
      projectRow?.id ??
      (
        await dir.projects.create(w, {
          name: options.projectName,
          domainId: domain.id,
          description: "Bootstrap project for initializing the cloud.",
          enabled: true,
          tags: [],
          extra: {},
        })
      ).id;

    const userId = await ensureAdminUser(dir, hasher, w, domain.id, options);
    await dir.assignments.grant(w, userId, { type: "project", id: projectId }, admin.id);
    await dir.assignments.grant(w, userId, { type: "system" }, admin.id);

    await dir.catalog.ensureRegion(tx, options.region);
    const [service] = await dir.catalog.listServices({ type: "identity" }, tx);
    const identity =
      service ??
      (await dir.catalog.createService(tx, {
        type: "identity",
        name: "keystone",
        description: "",
        enabled: true,
        extra: {},
      }));
    const existing = await dir.catalog.listEndpoints({ serviceId: identity.id }, tx);
    for (const [iface, url] of Object.entries(options.endpoints) as [Interface, string][]) {
      const same = existing.find((e) => e.interface === iface && e.regionId === options.region);
      if (!same) {
        await dir.catalog.createEndpoint(tx, {
          serviceId: identity.id,
          interface: iface,
          regionId: options.region,
          url,
          enabled: true,
        });
      } else if (same.url !== url) {
        await dir.catalog.updateEndpoint(tx, same.id, { url });
      }
    }
  });
  logger.info(
    { user: options.adminUsername, project: options.projectName, region: options.region },
    "bootstrap done",
  );
}

async function ensureAdminUser(
  dir: Directory,
  hasher: PasswordHasher,
  w: Work,
  domainId: string,
  options: BootstrapOptions,
): Promise<string> {
  const [row] = await w.tx.query<{ id: string; password_hash: string | null; enabled: boolean }>(
    "SELECT id, password_hash, enabled FROM users WHERE name = $1 AND domain_id = $2",
    [options.adminUsername, domainId],
  );
  if (!row) {
    const user = await dir.users.create(w, {
      name: options.adminUsername,
      domainId,
      enabled: true,
      defaultProjectId: undefined,
      extra: {},
      password: options.adminPassword,
    });
    return user.id;
  }
  const same = await hasher.verify(row.password_hash, options.adminPassword);
  if (!same || !row.enabled) {
    await dir.users.update(w, row.id, {
      enabled: true,
      ...(same ? {} : { password: options.adminPassword }),
    });
  }
  return row.id;
}
