// Helpers for the identity service's tests: a Keystone REST caller and token requests.

export interface Answer {
  status: number;
  headers: Headers;
  body: any;
}

/** A call to the Keystone API at restUrl; `token` goes in X-Auth-Token. */
export async function call(
  restUrl: string,
  method: string,
  path: string,
  options: { token?: string; body?: unknown; headers?: Record<string, string> } = {},
): Promise<Answer> {
  const headers: Record<string, string> = { ...options.headers };
  if (options.token) headers["x-auth-token"] = options.token;
  if (options.body !== undefined) headers["content-type"] = "application/json";
  const res = await fetch(`${restUrl}${path}`, {
    method,
    headers,
    body: options.body === undefined ? undefined : JSON.stringify(options.body),
  });
  const text = await res.text();
  let body: unknown;
  try {
    body = text ? JSON.parse(text) : undefined;
  } catch {
    body = text;
  }
  return { status: res.status, headers: res.headers, body };
}

export type Scope =
  | { project: { id: string } | { name: string; domain: { name: string } | { id: string } } }
  | { domain: { id: string } | { name: string } }
  | { system: { all: true } }
  | "unscoped";

export function passwordAuth(name: string, password: string, scope?: Scope) {
  return {
    auth: {
      identity: { methods: ["password"], password: { user: { name, domain: { id: "default" }, password } } },
      ...(scope ? { scope } : {}),
    },
  };
}

/** A token for the user (password method); fails the test when refused. */
export async function issue(restUrl: string, name: string, password: string, scope?: Scope): Promise<string> {
  const res = await call(restUrl, "POST", "/v3/auth/tokens", { body: passwordAuth(name, password, scope) });
  if (res.status !== 201) throw new Error(`token for ${name}: ${res.status} ${JSON.stringify(res.body)}`);
  return res.headers.get("x-subject-token")!;
}

/** Waits until check() is true, polling every 20 ms; returns the time it took. */
export async function within(ms: number, what: string, check: () => Promise<boolean>): Promise<number> {
  const started = Date.now();
  for (;;) {
    if (await check()) return Date.now() - started;
    if (Date.now() - started > ms) throw new Error(`${what}: not within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
