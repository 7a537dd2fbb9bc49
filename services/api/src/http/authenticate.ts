// Who is calling a REST edge of the api (the compute API, and the networking API beside it): the
// one place a request's X-Auth-Token becomes a Caller. The token is checked by the TokenValidator
// the service's own RPC port uses (the built-in identity's tokens verified locally with its keys
// and revocations; an existing Keystone's tokens by asking it), so a token is good at the edge
// exactly when it is good in the mesh.
//
// Answers, as keystonemiddleware in front of Nova and Neutron gives them:
//   no token, or a forged, malformed, expired or revoked one → 401 with Keystone's error body and
//     `WWW-Authenticate: Keystone uri="<identity>"`; the body never says which (the log does);
//   a token without a project scope, or without a role of Nova's and Neutron's defaults on it →
//     403; a reader's write (any method but GET and HEAD) → 403;
//   the issuer unreachable, or its revocations not known yet → 503 (fail closed).
// The insecure development mode (STRATUS_INSECURE_DEV_TOKENS=1, loopback only, main.ts) also takes
// `<user>:<project>` as a token: user `admin` is admin, anyone else a member of that project.
import type { IncomingMessage } from "node:http";
import { defaultRoles, isStratusError, type Logger, StratusError } from "@stratus/runtime";
import { hasRole, type TokenValidator } from "@stratus/runtime/auth";
import { type RestResponse, ServiceUnavailable } from "@stratus/runtime/http";
import type { Caller } from "./router.js";

/** keystonemiddleware's message for every refused token. */
export const AUTHENTICATION_REQUIRED = "The request you have made requires authentication.";

/** A request without a valid token: answered by `unauthenticatedResponse`. */
export class Unauthenticated extends Error {
  constructor(readonly authUri: string) {
    super(AUTHENTICATION_REQUIRED);
  }
}

/**
 * The 401 of a refused token, the same at every edge: Keystone's error body (what
 * keystonemiddleware answers before Nova or Neutron see the request) and where to get a token.
 */
export function unauthenticatedResponse(err: Unauthenticated): RestResponse {
  return {
    status: 401,
    body: { error: { code: 401, title: "Unauthorized", message: AUTHENTICATION_REQUIRED } },
    headers: { "www-authenticate": `Keystone uri="${err.authUri}"` },
  };
}

export interface EdgeAuthOptions {
  /** The service's validator (booted.validator); absent only in the insecure development mode. */
  validator: TokenValidator | undefined;
  /** The identity's public URL clients get tokens from (WWW-Authenticate's uri). */
  authUri: string;
  /** Take `<user>:<project>` tokens too (STRATUS_INSECURE_DEV_TOKENS). */
  insecureDevTokens: boolean;
  logger: Logger;
}

/** The caller of a request (throws Unauthenticated, a 403 StratusError, or a 503). */
export type Authenticate = (req: IncomingMessage, requestId: string) => Promise<Caller>;

const DEV_TOKEN = /^([A-Za-z0-9_.@-]{1,255}):([A-Za-z0-9_.@-]{1,255})$/;
const READS = new Set(["GET", "HEAD"]);

/** The request authentication of the api's REST edges: one per process, shared by every edge. */
export function edgeAuthenticator(options: EdgeAuthOptions): Authenticate {
  const { validator, logger } = options;
  const authUri = options.authUri.replace(/\/+$/, "");
  const refuse = (requestId: string, reason: string) => {
    logger.info({ request_id: requestId, reason }, "token refused");
    return new Unauthenticated(authUri);
  };

  const identify = async (token: string, requestId: string): Promise<Caller> => {
    const dev = options.insecureDevTokens ? DEV_TOKEN.exec(token) : null;
    if (dev) {
      const isAdmin = dev[1] === "admin";
      return { requestId, userId: dev[1]!, projectId: dev[2]!, roles: defaultRoles(isAdmin), isAdmin };
    }
    if (!validator) throw refuse(requestId, "not a development token");
    let identity: Awaited<ReturnType<TokenValidator["validate"]>>;
    try {
      identity = await validator.validate(token);
    } catch (err) {
      if (isStratusError(err, "unauthorized")) throw refuse(requestId, err.message);
      if (isStratusError(err, "unavailable")) throw new ServiceUnavailable("identity", { cause: err });
      throw err;
    }
    if (!identity.projectId) {
      throw new StratusError("forbidden", "A project-scoped token is required.");
    }
    return {
      requestId,
      userId: identity.userId,
      projectId: identity.projectId,
      roles: identity.roles,
      isAdmin: hasRole(identity.roles, "admin"),
    };
  };

  return async (req, requestId) => {
    const sent = req.headers["x-auth-token"];
    const token = Array.isArray(sent) ? sent[0] : sent;
    if (!token) throw refuse(requestId, "no token");
    const caller = await identify(token, requestId);
    // Nova's and Neutron's default policies: reader reads, member (or admin) also writes.
    const needed = READS.has((req.method ?? "GET").toUpperCase()) ? "reader" : "member";
    if (!hasRole(caller.roles, needed)) {
      throw new StratusError(
        "forbidden",
        needed === "reader"
          ? "Policy doesn't allow this operation to be performed: no role on the project."
          : "Policy doesn't allow this operation to be performed: the reader role may only read.",
      );
    }
    return caller;
  };
}
