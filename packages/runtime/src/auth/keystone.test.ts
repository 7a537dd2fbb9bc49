// KeystoneTokenValidator against a scripted stand-in for Keystone's two token calls, on a clock the
// test moves: the cache's bounds, shared requests, service-token renewal and failing closed. The
// real Keystone is driven in test/identity/keystone.test.ts.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { pino } from "pino";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { validationOutcome } from "../testing/keystone.js";
import { KeystoneTokenValidator, type KeystoneValidatorOptions } from "./keystone.js";

const T0 = Date.parse("2030-01-01T00:00:00Z");
const HOUR = 3_600_000;

interface UserToken {
  project?: { id: string; name: string };
  domain?: string;
  system?: boolean;
  roles: string[];
  issuedAt: number;
  expiresAt: number;
  applicationCredential?: string;
}

/** Keystone's POST and GET /v3/auth/tokens, with knobs for what a test needs it to do wrong. */
class StandInKeystone {
  readonly users = new Map<string, UserToken>();
  readonly serviceTokens = new Set<string>();
  readonly requests: { method: string; serviceToken?: string }[] = [];
  serviceTokenLifetimeMs = HOUR;
  /** Answer GET with this status instead of the token's verdict. */
  failValidation: number | undefined;
  failServiceAuth: number | undefined;
  /** Refuse (401) every service token, even a new one. */
  refuseServiceTokens = false;
  /** Hold every answer this long. */
  delayMs = 0;
  /** Answer GET 200 with this body instead. */
  body: unknown;
  private issued = 0;
  private server!: Server;
  url = "";

  constructor(private readonly clock: { now: number }) {}

  async start(): Promise<void> {
    this.server = createServer((req, res) => void this.answer(req, res));
    await new Promise<void>((resolve) => this.server.listen(0, "127.0.0.1", resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/v3`;
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise((resolve) => this.server.close(resolve));
  }

  /** Each request so far as "METHOD service-token". */
  trail(): string[] {
    return this.requests.map((r) => `${r.method} ${r.serviceToken ?? ""}`);
  }

  count(method: string): number {
    return this.requests.filter((r) => r.method === method).length;
  }

  private async answer(req: IncomingMessage, res: ServerResponse): Promise<void> {
    for await (const _ of req);
    const serviceToken = req.headers["x-auth-token"] as string | undefined;
    this.requests.push({ method: req.method ?? "", serviceToken });
    if (this.delayMs) await new Promise((r) => setTimeout(r, this.delayMs));
    const send = (status: number, body: unknown, headers: Record<string, string> = {}) => {
      res.writeHead(status, { "content-type": "application/json", ...headers });
      res.end(JSON.stringify(body));
    };
    if (req.method === "POST") {
      if (this.failServiceAuth) return send(this.failServiceAuth, { error: { code: this.failServiceAuth } });
      const token = `svc-${++this.issued}`;
      this.serviceTokens.add(token);
      const body = tokenBody({
        roles: ["service"],
        issuedAt: this.clock.now,
        expiresAt: this.clock.now + this.serviceTokenLifetimeMs,
      });
      return send(201, body, { "x-subject-token": token });
    }
    if (this.refuseServiceTokens || !serviceToken || !this.serviceTokens.has(serviceToken)) {
      return send(401, { error: { code: 401, title: "Unauthorized" } });
    }
    if (this.failValidation) return send(this.failValidation, { error: { code: this.failValidation } });
    if (this.body !== undefined) return send(200, this.body);
    const subject = req.headers["x-subject-token"] as string;
    const user = this.users.get(subject);
    // Older Keystone releases quote the refused token in the message.
    if (!user) return send(404, { error: { code: 404, message: `Could not recognize token ${subject}` } });
    return send(200, tokenBody(user));
  }
}

function tokenBody(t: UserToken) {
  return {
    token: {
      methods: t.applicationCredential ? ["application_credential"] : ["password"],
      user: { id: "u-1", name: "alice", domain: { id: "default", name: "Default" } },
      ...(t.project ? { project: { ...t.project, domain: { id: "default", name: "Default" } } } : {}),
      ...(t.domain ? { domain: { id: t.domain, name: t.domain } } : {}),
      ...(t.system ? { system: { all: true } } : {}),
      roles: t.roles.map((name) => ({ id: `r-${name}`, name })),
      issued_at: new Date(t.issuedAt).toISOString().replace("Z", "000Z"),
      expires_at: new Date(t.expiresAt).toISOString().replace("Z", "000Z"),
      audit_ids: ["audit-1", "audit-0"],
      ...(t.applicationCredential
        ? { application_credential: { id: t.applicationCredential, name: "ci" } }
        : {}),
    },
  };
}

const clock = { now: T0 };
let keystone: StandInKeystone;
let logLines: string[];
const validators: KeystoneTokenValidator[] = [];

function validator(options: Partial<KeystoneValidatorOptions> = {}): KeystoneTokenValidator {
  const logger = pino({ level: "trace" }, { write: (line: string) => void logLines.push(line) });
  const v = new KeystoneTokenValidator(
    {
      url: keystone.url,
      serviceUser: { name: "stratus", password: "service-secret", domainName: "Default" },
      serviceProject: { name: "service", domainName: "Default" },
      cacheTtlMs: 5_000,
      cacheMaxEntries: 100,
      timeoutMs: 2_000,
      ...options,
    },
    logger,
    { now: () => clock.now },
  );
  validators.push(v);
  return v;
}

const member = (expiresInMs = HOUR): UserToken => ({
  project: { id: "p-1", name: "demo" },
  roles: ["member", "reader"],
  issuedAt: clock.now,
  expiresAt: clock.now + expiresInMs,
});

beforeEach(async () => {
  clock.now = T0;
  logLines = [];
  keystone = new StandInKeystone(clock);
  await keystone.start();
});
afterEach(async () => {
  await Promise.all(validators.splice(0).map((v) => v.close()));
  await keystone.stop();
});

describe("KeystoneTokenValidator", () => {
  it("maps Keystone's token to the identity: user, project scope, effective roles, times, audit ids", async () => {
    keystone.users.set("tok-a", member());
    const identity = await validator().validate("tok-a");
    expect(identity).toEqual({
      userId: "u-1",
      userName: "alice",
      userDomainId: "default",
      projectId: "p-1",
      projectName: "demo",
      projectDomainId: "default",
      domainId: "",
      system: false,
      roles: ["member", "reader"],
      issuedAt: new Date(T0),
      expiresAt: new Date(T0 + HOUR),
      auditIds: ["audit-1", "audit-0"],
      methods: ["password"],
    });
    expect(Object.isFrozen(identity) && Object.isFrozen(identity.roles)).toBe(true);
    expect(keystone.requests.at(-1)).toEqual({ method: "GET", serviceToken: "svc-1" });
  });

  it("maps domain scope, system scope and an application credential", async () => {
    keystone.users.set("tok-domain", { ...member(), project: undefined, domain: "d-1", roles: ["admin"] });
    keystone.users.set("tok-system", { ...member(), project: undefined, system: true, roles: ["reader"] });
    keystone.users.set("tok-app", { ...member(), applicationCredential: "ac-1" });
    const v = validator();
    expect(await v.validate("tok-domain")).toMatchObject({ domainId: "d-1", projectId: "", system: false });
    expect(await v.validate("tok-system")).toMatchObject({ domainId: "", projectId: "", system: true });
    expect(await v.validate("tok-app")).toMatchObject({
      applicationCredentialId: "ac-1",
      methods: ["application_credential"],
    });
  });

  it("reuses an answer for the TTL, then asks Keystone again", async () => {
    keystone.users.set("tok-a", member());
    const v = validator({ cacheTtlMs: 5_000 });
    await v.validate("tok-a");
    clock.now += 4_999;
    await v.validate("tok-a");
    expect(keystone.count("GET")).toBe(1);
    clock.now += 1;
    await v.validate("tok-a");
    expect(keystone.count("GET")).toBe(2);
  });

  it("with a TTL of 0 asks Keystone every time", async () => {
    keystone.users.set("tok-a", member());
    const v = validator({ cacheTtlMs: 0 });
    await v.validate("tok-a");
    await v.validate("tok-a");
    expect(keystone.count("GET")).toBe(2);
  });

  it("never keeps a valid answer past the token's expiry, whatever the TTL", async () => {
    keystone.users.set("tok-a", member(3_000));
    const v = validator({ cacheTtlMs: 60_000 });
    expect(await validationOutcome(v, "tok-a")).toBe("allowed");
    clock.now += 2_999;
    expect(await validationOutcome(v, "tok-a")).toBe("allowed");
    expect(keystone.count("GET")).toBe(1);
    clock.now += 1;
    expect(await validationOutcome(v, "tok-a")).toBe("unauthorized");
  });

  it("keeps an invalid answer for the TTL too: a refused token is not asked about again", async () => {
    const v = validator({ cacheTtlMs: 5_000 });
    expect(await validationOutcome(v, "forged")).toBe("unauthorized");
    expect(await validationOutcome(v, "forged")).toBe("unauthorized");
    expect(keystone.count("GET")).toBe(1);
    clock.now += 5_000;
    expect(await validationOutcome(v, "forged")).toBe("unauthorized");
    expect(keystone.count("GET")).toBe(2);
  });

  it("refuses what cannot be a token without asking Keystone", async () => {
    const v = validator();
    for (const token of ["", "two words", "line\nbreak", "x".repeat(8193), "caf\u00e9"]) {
      expect(await validationOutcome(v, token)).toBe("unauthorized");
    }
    expect(keystone.requests).toEqual([]);
  });

  it("shares one request among concurrent validations of the same token", async () => {
    keystone.users.set("tok-a", member());
    keystone.delayMs = 50;
    const v = validator();
    const identities = await Promise.all(Array.from({ length: 8 }, () => v.validate("tok-a")));
    expect(new Set(identities).size).toBe(1);
    expect(keystone.count("POST")).toBe(1);
    expect(keystone.count("GET")).toBe(1);
  });

  it("holds at most cacheMaxEntries answers, dropping the oldest first", async () => {
    for (const t of ["tok-a", "tok-b", "tok-c"]) keystone.users.set(t, member());
    const v = validator({ cacheMaxEntries: 2 });
    for (const t of ["tok-a", "tok-b", "tok-c"]) await v.validate(t);
    expect(keystone.count("GET")).toBe(3);
    await v.validate("tok-c");
    await v.validate("tok-b");
    expect(keystone.count("GET")).toBe(3);
    await v.validate("tok-a");
    expect(keystone.count("GET")).toBe(4);
  });

  it("renews the service token before it expires (two minutes before, as keystoneauth)", async () => {
    for (const t of ["tok-a", "tok-b", "tok-c"]) keystone.users.set(t, member(2 * HOUR));
    const v = validator();
    await v.validate("tok-a");
    clock.now = T0 + HOUR - 120_001;
    await v.validate("tok-b");
    expect(keystone.count("POST")).toBe(1);
    clock.now = T0 + HOUR - 120_000;
    await v.validate("tok-c");
    expect(keystone.trail()).toEqual(["POST ", "GET svc-1", "GET svc-1", "POST ", "GET svc-2"]);
  });

  it("renews a short-lived service token with a quarter of its life left", async () => {
    keystone.serviceTokenLifetimeMs = 60_000;
    for (const t of ["tok-a", "tok-b", "tok-c"]) keystone.users.set(t, member());
    const v = validator();
    await v.validate("tok-a");
    clock.now = T0 + 44_999;
    await v.validate("tok-b");
    expect(keystone.count("POST")).toBe(1);
    clock.now = T0 + 45_000;
    await v.validate("tok-c");
    expect(keystone.count("POST")).toBe(2);
  });

  it("when Keystone refuses the service token (revoked), authenticates again once and retries", async () => {
    for (const t of ["tok-a", "tok-b"]) keystone.users.set(t, member());
    const v = validator();
    await v.validate("tok-a");
    keystone.serviceTokens.delete("svc-1");
    expect(await validationOutcome(v, "tok-b")).toBe("allowed");
    expect(keystone.trail()).toEqual(["POST ", "GET svc-1", "GET svc-1", "POST ", "GET svc-2"]);
  });

  it("fails closed when Keystone refuses even a new service token, and does not keep that answer", async () => {
    keystone.users.set("tok-a", member());
    keystone.refuseServiceTokens = true;
    const v = validator();
    expect(await validationOutcome(v, "tok-a")).toBe("unavailable");
    expect(keystone.count("POST")).toBe(2);
    keystone.refuseServiceTokens = false;
    expect(await validationOutcome(v, "tok-a")).toBe("allowed");
  });

  it("fails closed when the service user cannot authenticate", async () => {
    keystone.users.set("tok-a", member());
    keystone.failServiceAuth = 401;
    expect(await validationOutcome(validator(), "tok-a")).toBe("unavailable");
    expect(keystone.count("GET")).toBe(0);
  });

  it("answers unavailable, never allowed and never kept, when Keystone fails (5xx, 403, a bad body)", async () => {
    keystone.users.set("tok-a", member());
    const v = validator();
    for (const status of [500, 502, 503, 403]) {
      keystone.failValidation = status;
      expect(await validationOutcome(v, "tok-a")).toBe("unavailable");
    }
    keystone.failValidation = undefined;
    keystone.body = { token: { user: "not a user" } };
    expect(await validationOutcome(v, "tok-a")).toBe("unavailable");
    keystone.body = undefined;
    expect(await validationOutcome(v, "tok-a")).toBe("allowed");
    expect(keystone.count("GET")).toBe(6);
  });

  it("answers unavailable when Keystone is too slow or gone", async () => {
    keystone.users.set("tok-a", member());
    keystone.delayMs = 500;
    expect(await validationOutcome(validator({ timeoutMs: 100 }), "tok-a")).toBe("unavailable");
    keystone.delayMs = 0;
    await keystone.stop();
    expect(await validationOutcome(validator(), "tok-a")).toBe("unavailable");
    await keystone.start();
  });

  it("never writes a token into its logs, not even Keystone's message quoting it", async () => {
    keystone.users.set("tok-valid-secret", member());
    const v = validator({ cacheTtlMs: 0 });
    await v.validate("tok-valid-secret");
    await validationOutcome(v, "tok-forged-secret");
    keystone.serviceTokens.clear();
    await v.validate("tok-valid-secret");
    keystone.failValidation = 500;
    await validationOutcome(v, "tok-valid-secret");
    expect(logLines.length).toBeGreaterThan(2);
    expect(logLines.join("\n")).not.toMatch(/secret|svc-\d/);
  });

  it("refuses to validate once closed", async () => {
    keystone.users.set("tok-a", member());
    const v = validator();
    await v.validate("tok-a");
    await v.close();
    expect(await validationOutcome(v, "tok-a")).toBe("unavailable");
  });
});
