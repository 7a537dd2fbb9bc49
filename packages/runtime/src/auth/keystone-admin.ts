// A Keystone v3 administrator's REST client, for Stratus's identity service and an existing Keystone
// alike: what `npm start` and the test harness use to make service users (service-users.ts) and
// test users. Not used by the services themselves.

export interface PasswordAuth {
  user: string;
  password: string;
  /** Scope the token to this project; unscoped when absent. */
  project?: string;
  /** Domain of the user and of the project (name; Default by default). */
  domain?: string;
}

export interface IssuedToken {
  token: string;
  issuedAt: Date;
  expiresAt: Date;
}

/** A user in the Default domain with roles on a project. */
export interface UserSpec {
  name: string;
  password: string;
  project: string;
  roles: readonly string[];
}

export class KeystoneAdmin {
  private adminToken: IssuedToken | undefined;

  constructor(
    /** Keystone's v3 root, e.g. http://127.0.0.1:5000/v3. */
    readonly v3Url: string,
    /** The administrator: a user with the admin role on `project`. */
    private readonly admin: PasswordAuth,
    /** What to add to the error of a call the server failed (5xx): its log, say. */
    private readonly serverLog?: () => string,
  ) {}

  /** POST /v3/auth/tokens with a password. */
  async issueToken(auth: PasswordAuth): Promise<IssuedToken> {
    const domain = { name: auth.domain ?? "Default" };
    const { res, json } = await this.call(
      "POST",
      "/auth/tokens?nocatalog",
      {},
      {
        auth: {
          identity: {
            methods: ["password"],
            password: { user: { name: auth.user, domain, password: auth.password } },
          },
          ...(auth.project ? { scope: { project: { name: auth.project, domain } } } : {}),
        },
      },
    );
    const body = json as { token: { issued_at: string; expires_at: string } };
    return {
      token: res.headers.get("x-subject-token")!,
      issuedAt: new Date(body.token.issued_at),
      expiresAt: new Date(body.token.expires_at),
    };
  }

  /** A REST call as the administrator (its token renewed as needed); a non-2xx answer throws. */
  async request<T = unknown>(method: string, path: string, body?: unknown): Promise<T> {
    return (await this.call(method, path, await this.adminHeaders(), body)).json as T;
  }

  /** DELETE /v3/auth/tokens: the token is revoked. */
  async revokeToken(token: string): Promise<void> {
    await this.call("DELETE", "/auth/tokens", { ...(await this.adminHeaders()), "x-subject-token": token });
  }

  /** The id of the named project (Default domain) or role, made when there is none. */
  async ensure(kind: "projects" | "roles", name: string): Promise<string> {
    const found = await this.request<Record<string, { id: string }[]>>(
      "GET",
      `/${kind}?name=${encodeURIComponent(name)}`,
    );
    const existing = found[kind]?.[0];
    if (existing) return existing.id;
    const one = kind.slice(0, -1);
    const made = await this.request<Record<string, { id: string }>>("POST", `/${kind}`, {
      [one]: kind === "projects" ? { name, domain_id: "default" } : { name },
    });
    return made[one]!.id;
  }

  /**
   * A user in the Default domain with `password` (set again when it exists, unless `keepPassword`:
   * setting a password revokes the user's tokens) and `roles` on `project`; the project and the
   * roles are made as needed.
   */
  async ensureUser(
    spec: UserSpec,
    options: { keepPassword?: boolean } = {},
  ): Promise<{ userId: string; projectId: string }> {
    const projectId = await this.ensure("projects", spec.project);
    const found = await this.request<{ users: { id: string }[] }>(
      "GET",
      `/users?name=${encodeURIComponent(spec.name)}&domain_id=default`,
    );
    let userId = found.users[0]?.id;
    if (userId) {
      if (!options.keepPassword) {
        await this.request("PATCH", `/users/${userId}`, { user: { password: spec.password, enabled: true } });
      }
    } else {
      const { user } = await this.request<{ user: { id: string } }>("POST", "/users", {
        user: {
          name: spec.name,
          password: spec.password,
          domain_id: "default",
          default_project_id: projectId,
        },
      });
      userId = user.id;
    }
    for (const role of spec.roles) {
      await this.request(
        "PUT",
        `/projects/${projectId}/users/${userId}/roles/${await this.ensure("roles", role)}`,
      );
    }
    return { userId, projectId };
  }

  /** The administrator's token, renewed with a third of its life left: one expiring mid-call would fail it. */
  private async adminHeaders(): Promise<Record<string, string>> {
    const t = this.adminToken;
    if (!t || Date.now() > t.expiresAt.getTime() - (t.expiresAt.getTime() - t.issuedAt.getTime()) / 3) {
      this.adminToken = await this.issueToken(this.admin);
    }
    return { "x-auth-token": this.adminToken!.token };
  }

  private async call(
    method: string,
    path: string,
    headers: Record<string, string>,
    body?: unknown,
  ): Promise<{ res: Response; json: unknown }> {
    const res = await fetch(`${this.v3Url}${path}`, {
      method,
      headers: {
        accept: "application/json",
        ...headers,
        ...(body === undefined ? {} : { "content-type": "application/json" }),
      },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      signal: AbortSignal.timeout(30_000),
    });
    const text = await res.text();
    if (!res.ok) {
      const log = res.status >= 500 && this.serverLog ? `\n${this.serverLog()}` : "";
      throw new Error(`${method} ${path}: HTTP ${res.status} ${text.slice(0, 300)}${log}`);
    }
    return { res, json: text ? JSON.parse(text) : undefined };
  }
}
