// POST /v3/auth/tokens without the HTTP: who the caller is (password, token or application
// credential) and on what scope (a project, a domain, the system, or none), as Keystone decides.
// Every refusal is the same "unauthorized" to the caller; the reason is only in the error's
// message, for the log. An unknown user costs a password hash like a known one.
import { type Logger, StratusError } from "@stratus/runtime";
import type { Directory } from "../directory/directory.js";
import type { DomainRecord } from "../directory/domains.js";
import type { ProjectRecord } from "../directory/projects.js";
import type { RoleRecord } from "../directory/roles.js";
import type { UserCredentials } from "../directory/users.js";
import type { IssuedToken, TokenRequest, TokenService } from "../tokens/token-service.js";
import type { Lockout } from "./lockout.js";
import type { PasswordHasher } from "./password-hasher.js";

export type DomainRef = { id: string } | { name: string };
export type UserRef = { id: string } | { name: string; domain: DomainRef };

export type ScopeRequest =
  | { kind: "default" }
  | { kind: "unscoped" }
  | { kind: "project"; project: { id: string } | { name: string; domain: DomainRef } }
  | { kind: "domain"; domain: DomainRef }
  | { kind: "system" };

export type Credentials =
  | { method: "password"; user: UserRef; password: string }
  | { method: "token"; token: string }
  | {
      method: "application_credential";
      credential: { id: string } | { name: string; user: UserRef };
      secret: string;
    };

export interface AuthResult extends IssuedToken {
  /** The role records behind identity.roles (ids for the token body). */
  roles: RoleRecord[];
  applicationCredential?: { id: string; name: string; unrestricted: boolean };
}

const refused = (reason: string) => new StratusError("unauthorized", reason);

/** What a principal is before a scope is chosen. */
interface Principal {
  user: UserCredentials;
  methods: string[];
  notAfter?: Date;
  parentAuditId?: string;
}

export class Authenticator {
  constructor(
    private readonly dir: Directory,
    private readonly hasher: PasswordHasher,
    private readonly lockout: Lockout,
    private readonly tokens: TokenService,
    private readonly logger: Logger,
  ) {}

  async authenticate(credentials: Credentials, scope: ScopeRequest): Promise<AuthResult> {
    if (credentials.method === "application_credential")
      return this.byApplicationCredential(credentials, scope);
    const principal =
      credentials.method === "password"
        ? await this.byPassword(credentials.user, credentials.password)
        : await this.byToken(credentials.token);
    return this.scoped(principal, scope);
  }

  private async byPassword(ref: UserRef, password: string): Promise<Principal> {
    const user = await this.findUser(ref);
    const matches = await this.hasher.verify(user?.passwordHash, password);
    if (!user) throw refused("no such user");
    if (this.lockout.isLocked(user)) {
      this.logger.warn({ user_id: user.id }, "authentication refused: account locked");
      throw refused("account locked");
    }
    if (!matches) {
      await this.lockout.recordFailure(user.id);
      throw refused("wrong password");
    }
    await this.lockout.recordSuccess(user);
    await this.usable(user);
    return { user, methods: ["password"] };
  }

  private async byToken(token: string): Promise<Principal> {
    const from = await this.tokens.validate(token).catch((err: unknown) => {
      throw err instanceof StratusError && err.kind === "unavailable" ? err : refused("token not valid");
    });
    if (from.applicationCredentialId)
      throw refused("a token from an application credential cannot be rescoped");
    const user = await this.dir.users.credentials(from.userId);
    if (!user) throw refused("the token's user is gone");
    await this.usable(user);
    // The new token lives no longer than the one it was made from, and carries its audit id.
    return {
      user,
      methods: ["token", ...from.methods.filter((m) => m !== "token")],
      notAfter: from.expiresAt,
      parentAuditId: from.auditIds[0]!,
    };
  }

  private async byApplicationCredential(
    c: Extract<Credentials, { method: "application_credential" }>,
    scope: ScopeRequest,
  ): Promise<AuthResult> {
    if (scope.kind !== "default") throw refused("application credentials cannot request a scope");
    let ref: { id: string } | { name: string; userId: string };
    if ("id" in c.credential) {
      ref = { id: c.credential.id };
    } else {
      const owner = await this.findUser(c.credential.user);
      ref = { name: c.credential.name, userId: owner?.id ?? "" };
    }
    const credential = await this.dir.applicationCredentials.check(ref, c.secret);
    if (!credential) throw refused("no such application credential, or a wrong secret");
    if (credential.expiresAt && credential.expiresAt.getTime() <= Date.now()) {
      throw refused("application credential expired");
    }
    const user = await this.dir.users.credentials(credential.userId);
    if (!user) throw refused("the credential's user is gone");
    await this.usable(user);
    const project = await this.usableProject(await this.dir.projects.find(credential.projectId));
    // The credential's roles that the user still holds there.
    const held = await this.dir.assignments.effectiveRoles(user.id, { type: "project", id: project.id });
    const granted = await this.dir.roles.expand(credential.roleIds);
    const roles = held.filter((r) => granted.has(r.id));
    if (roles.length === 0) throw refused("the user holds none of the credential's roles on its project");
    const issued = await this.issue(
      {
        user,
        methods: ["application_credential"],
        ...(credential.expiresAt ? { notAfter: credential.expiresAt } : {}),
      },
      { project, roles },
      credential.id,
    );
    return {
      ...issued,
      applicationCredential: {
        id: credential.id,
        name: credential.name,
        unrestricted: credential.unrestricted,
      },
    };
  }

  private async scoped(principal: Principal, asked: ScopeRequest): Promise<AuthResult> {
    let scope = asked;
    const { user } = principal;
    if (scope.kind === "default") {
      // Keystone: the user's default project when the user has a role there, else unscoped.
      const project = user.defaultProjectId ? await this.dir.projects.find(user.defaultProjectId) : undefined;
      const usable =
        project?.enabled &&
        (await this.dir.assignments.effectiveRoles(user.id, { type: "project", id: project.id })).length > 0;
      scope = usable ? { kind: "project", project: { id: project.id } } : { kind: "unscoped" };
    }
    switch (scope.kind) {
      case "project": {
        const project = await this.usableProject(await this.findProject(scope.project));
        const roles = await this.dir.assignments.effectiveRoles(user.id, { type: "project", id: project.id });
        if (roles.length === 0) throw refused(`user ${user.id} has no role on project ${project.id}`);
        return this.issue(principal, { project, roles });
      }
      case "domain": {
        const domain = await this.findDomain(scope.domain);
        if (!domain?.enabled) throw refused("domain not found or disabled");
        const roles = await this.dir.assignments.effectiveRoles(user.id, { type: "domain", id: domain.id });
        if (roles.length === 0) throw refused(`user ${user.id} has no role on domain ${domain.id}`);
        return this.issue(principal, { domain, roles });
      }
      case "system": {
        const roles = await this.dir.assignments.effectiveRoles(user.id, { type: "system" });
        if (roles.length === 0) throw refused(`user ${user.id} has no role on the system`);
        return this.issue(principal, { system: true, roles });
      }
      default:
        return this.issue(principal, { roles: [] });
    }
  }

  private async issue(
    p: Principal,
    scope: { project?: ProjectRecord; domain?: DomainRecord; system?: boolean; roles: RoleRecord[] },
    applicationCredentialId?: string,
  ): Promise<AuthResult> {
    const req: TokenRequest = {
      userId: p.user.id,
      userName: p.user.name,
      userDomainId: p.user.domainId,
      projectId: scope.project?.id ?? "",
      projectName: scope.project?.name ?? "",
      projectDomainId: scope.project?.domainId ?? "",
      domainId: scope.domain?.id ?? "",
      system: scope.system ?? false,
      roles: scope.roles.map((r) => r.name),
      methods: p.methods,
      notAfter: p.notAfter,
      parentAuditId: p.parentAuditId,
    };
    if (applicationCredentialId) req.applicationCredentialId = applicationCredentialId;
    return { ...(await this.tokens.issue(req)), roles: scope.roles };
  }

  /** The user may authenticate: enabled, in an enabled domain. */
  private async usable(user: UserCredentials): Promise<void> {
    if (!user.enabled) throw refused("user disabled");
    const domain = await this.dir.domains.find(user.domainId);
    if (!domain?.enabled) throw refused("the user's domain is disabled");
  }

  private async usableProject(project: ProjectRecord | undefined): Promise<ProjectRecord> {
    if (!project?.enabled) throw refused("project not found or disabled");
    const domain = await this.dir.domains.find(project.domainId);
    if (!domain?.enabled) throw refused("the project's domain is disabled");
    return project;
  }

  private async findDomain(ref: DomainRef): Promise<DomainRecord | undefined> {
    return "id" in ref ? this.dir.domains.find(ref.id) : this.dir.domains.findByName(ref.name);
  }

  private async findUser(ref: UserRef): Promise<UserCredentials | undefined> {
    if ("id" in ref) return this.dir.users.credentials(ref.id);
    const domain = await this.findDomain(ref.domain);
    return domain ? this.dir.users.credentialsByName(ref.name, domain.id) : undefined;
  }

  private async findProject(ref: { id: string } | { name: string; domain: DomainRef }) {
    if ("id" in ref) return this.dir.projects.find(ref.id);
    const domain = await this.findDomain(ref.domain);
    return domain ? this.dir.projects.findByName(ref.name, domain.id) : undefined;
  }
}
