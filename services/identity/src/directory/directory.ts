// Everything the identity service keeps, over its one database: the stores and the revocation log
// their changes write to.
import type { Database } from "@stratus/runtime";
import type { PasswordHasher } from "../auth/password-hasher.js";
import type { RevocationLog, Work } from "../tokens/revocation-log.js";
import { ApplicationCredentials } from "./application-credentials.js";
import { Assignments } from "./assignments.js";
import { Catalog } from "./catalog.js";
import { Domains } from "./domains.js";
import { Projects } from "./projects.js";
import { Roles } from "./roles.js";
import { Users } from "./users.js";

export class Directory {
  readonly domains: Domains;
  readonly projects: Projects;
  readonly users: Users;
  readonly roles: Roles;
  readonly assignments: Assignments;
  readonly applicationCredentials: ApplicationCredentials;
  readonly catalog: Catalog;

  constructor(
    readonly db: Database,
    hasher: PasswordHasher,
    readonly revocations: RevocationLog,
  ) {
    this.domains = new Domains(db);
    this.projects = new Projects(db);
    this.users = new Users(db, hasher);
    this.roles = new Roles(db);
    this.assignments = new Assignments(db, {
      users: this.users,
      projects: this.projects,
      domains: this.domains,
      roles: this.roles,
    });
    this.applicationCredentials = new ApplicationCredentials(db, hasher);
    this.catalog = new Catalog(db);
  }

  /** A change in one transaction; the tokens it revokes are announced after it committed. */
  change<T>(fn: (w: Work) => Promise<T>): Promise<T> {
    return this.revocations.run(fn);
  }
}
