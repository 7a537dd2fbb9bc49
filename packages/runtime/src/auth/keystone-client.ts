// The two Keystone v3 calls a token validator makes: issue the service's own token (password, project
// scope) and validate a user's token with it. Every answer other than a clear one from Keystone —
// no connection, a timeout, a 5xx, a body that is not a token — is "unavailable": the caller fails
// closed and never mistakes a Keystone it cannot hear for a yes.
import type { Logger } from "pino";
import { z } from "zod";
import { StratusError } from "../errors.js";
import type { AuthenticatedIdentity } from "./identity.js";

export interface ServiceCredentials {
  user: { name: string; password: string; domainName: string };
  project: { name: string; domainName: string };
}

export interface IssuedToken {
  token: string;
  issuedAt: Date;
  expiresAt: Date;
}

/**
 * Keystone's verdict on a user's token: the identity it carries; "invalid" (404, or 400 for one it
 * cannot parse: forged, malformed, expired, revoked); "service_token_refused" (401: Keystone no
 * longer accepts the service token, which must be renewed).
 */
export type ValidationAnswer = AuthenticatedIdentity | "invalid" | "service_token_refused";

const ref = z.object({ id: z.string() });
const scopedProject = z.object({ id: z.string(), name: z.string(), domain: ref });

/** The part of Keystone's token body (GET/POST /v3/auth/tokens) an identity is made from. */
const tokenBody = z.object({
  token: z.object({
    methods: z.array(z.string()),
    user: z.object({ id: z.string(), name: z.string(), domain: ref }),
    project: scopedProject.optional(),
    domain: ref.optional(),
    system: z.object({ all: z.boolean().optional() }).optional(),
    roles: z.array(z.object({ name: z.string() })).optional(),
    issued_at: z.coerce.date(),
    expires_at: z.coerce.date(),
    audit_ids: z.array(z.string()),
    application_credential: ref.optional(),
  }),
});

function identityOf(body: z.infer<typeof tokenBody>): AuthenticatedIdentity {
  const t = body.token;
  const identity: AuthenticatedIdentity = {
    userId: t.user.id,
    userName: t.user.name,
    userDomainId: t.user.domain.id,
    projectId: t.project?.id ?? "",
    projectName: t.project?.name ?? "",
    projectDomainId: t.project?.domain.id ?? "",
    domainId: t.domain?.id ?? "",
    system: t.system?.all === true,
    // Keystone lists the effective roles on the scope, implied ones (member → reader) included.
    roles: Object.freeze((t.roles ?? []).map((role) => role.name)) as string[],
    issuedAt: t.issued_at,
    expiresAt: t.expires_at,
    auditIds: Object.freeze([...t.audit_ids]) as string[],
    methods: Object.freeze([...t.methods]) as string[],
  };
  if (t.application_credential) identity.applicationCredentialId = t.application_credential.id;
  // One identity may answer many requests (cache, shared validations): none may change it.
  return Object.freeze(identity);
}

const unavailable = (message: string, cause?: unknown) =>
  new StratusError("unavailable", message, cause === undefined ? undefined : { cause });

export class KeystoneClient {
  private readonly closing = new AbortController();

  constructor(
    /** Keystone's v3 root, e.g. http://keystone:5000/v3. */
    private readonly v3Url: string,
    private readonly timeoutMs: number,
    private readonly logger: Logger,
    private readonly fetchFn: typeof fetch = fetch,
  ) {}

  /** POST /v3/auth/tokens with the service user's password, scoped to its project. */
  async issueServiceToken(credentials: ServiceCredentials): Promise<IssuedToken> {
    const res = await this.send(
      "POST",
      { "content-type": "application/json" },
      JSON.stringify({
        auth: {
          identity: {
            methods: ["password"],
            password: {
              user: {
                name: credentials.user.name,
                domain: { name: credentials.user.domainName },
                password: credentials.user.password,
              },
            },
          },
          scope: {
            project: { name: credentials.project.name, domain: { name: credentials.project.domainName } },
          },
        },
      }),
    );
    const token = res.headers.get("x-subject-token");
    if (res.status !== 201 || !token) {
      await res.body?.cancel();
      this.logger.error(
        { status: res.status, user: credentials.user.name, project: credentials.project.name },
        "Keystone did not issue the service token (check the service user's name, password, project and role)",
      );
      throw unavailable(`Keystone did not issue the service token (HTTP ${res.status})`);
    }
    const body = await this.tokenBodyOf(res);
    return { token, issuedAt: body.token.issued_at, expiresAt: body.token.expires_at };
  }

  /** GET /v3/auth/tokens: the service token vouches for the request, the user's is the subject. */
  async validateToken(serviceToken: string, subjectToken: string): Promise<ValidationAnswer> {
    const res = await this.send("GET", { "x-auth-token": serviceToken, "x-subject-token": subjectToken });
    if (res.status === 200) return identityOf(await this.tokenBodyOf(res));
    // The error body is not logged: some Keystone releases quote the refused token in it.
    await res.body?.cancel();
    if (res.status === 404 || res.status === 400) return "invalid";
    if (res.status === 401) return "service_token_refused";
    if (res.status === 403) {
      this.logger.error("Keystone forbids the service user to validate tokens: give it the service role");
    } else {
      this.logger.error({ status: res.status }, "Keystone failed to validate a token");
    }
    throw unavailable(`Keystone could not validate the token (HTTP ${res.status})`);
  }

  /** Aborts every request in flight; later ones fail at once. */
  close(): void {
    this.closing.abort();
  }

  private async send(
    method: "GET" | "POST",
    headers: Record<string, string>,
    body?: string,
  ): Promise<Response> {
    const signal = AbortSignal.any([this.closing.signal, AbortSignal.timeout(this.timeoutMs)]);
    try {
      return await this.fetchFn(`${this.v3Url}/auth/tokens?nocatalog`, {
        method,
        headers: { accept: "application/json", ...headers },
        body,
        signal,
      });
    } catch (err) {
      const reason = signal.aborted && !this.closing.signal.aborted ? "timed out" : "unreachable";
      // Only the error's code is logged: a message about the request could quote its headers.
      const code = (err as { cause?: { code?: unknown } }).cause?.code;
      this.logger.error({ url: this.v3Url, reason, code }, "Keystone is not answering");
      throw unavailable(`Keystone ${reason}`, err);
    }
  }

  private async tokenBodyOf(res: Response): Promise<z.infer<typeof tokenBody>> {
    let json: unknown;
    try {
      json = await res.json();
    } catch (err) {
      throw unavailable("Keystone's answer was cut off or not JSON", err);
    }
    const parsed = tokenBody.safeParse(json);
    if (!parsed.success) {
      this.logger.error({ issues: parsed.error.issues.length }, "Keystone's token body is not a v3 token");
      throw unavailable("Keystone's answer is not a v3 token");
    }
    return parsed.data;
  }
}
