// CORS on the RPC port, for browser clients of Connect and gRPC-Web (https://connectrpc.com/docs/cors):
// a preflight from an allowed origin is answered here with the methods and headers those protocols
// need (connect-es's `cors` lists, plus the headers Stratus reads and sends); a call from an
// allowed origin gets the origin and the headers its script may read. Without allowed origins
// (RPC_CORS_ORIGINS unset) nothing of this is installed: no CORS header is ever sent.
import type { IncomingHttpHeaders } from "node:http";
import { cors } from "@connectrpc/connect";
import type { z } from "zod";
import type { rpcConfig } from "../config.js";
import { REQUEST_ID_HEADER } from "../context.js";
import { KIND_HEADER } from "../errors.js";

/** Request headers a browser may send beyond connect-es's: the request id, and a token either way. */
const STRATUS_REQUEST_HEADERS = [REQUEST_ID_HEADER, "x-auth-token", "authorization"];
/** Response headers a script may read beyond connect-es's: the request id and an error's kind. */
const STRATUS_RESPONSE_HEADERS = [REQUEST_ID_HEADER, KIND_HEADER];

export interface CorsPolicy {
  /** Allowed origins; "*" alone: any. */
  origins: string[];
  allowHeaders: string[];
  exposeHeaders: string[];
  maxAgeS: number;
}

type CorsSettings = Pick<
  z.infer<z.ZodObject<typeof rpcConfig>>,
  "RPC_CORS_ORIGINS" | "RPC_CORS_HEADERS" | "RPC_CORS_EXPOSE_HEADERS" | "RPC_CORS_MAX_AGE_S"
>;

/** The policy the settings describe; undefined when no origin is allowed. */
export function corsPolicy(settings: CorsSettings): CorsPolicy | undefined {
  if (settings.RPC_CORS_ORIGINS.length === 0) return undefined;
  const names = (lists: (readonly string[])[]) => [...new Set(lists.flat().map((h) => h.toLowerCase()))];
  return {
    origins: settings.RPC_CORS_ORIGINS,
    allowHeaders: names([cors.allowedHeaders, STRATUS_REQUEST_HEADERS, settings.RPC_CORS_HEADERS]),
    exposeHeaders: names([cors.exposedHeaders, STRATUS_RESPONSE_HEADERS, settings.RPC_CORS_EXPOSE_HEADERS]),
    maxAgeS: settings.RPC_CORS_MAX_AGE_S,
  };
}

interface Request {
  readonly method?: string;
  readonly headers: IncomingHttpHeaders;
}
interface Response {
  setHeader(name: string, value: string): unknown;
  writeHead(status: number, headers?: Record<string, string>): unknown;
  end(): unknown;
}

/** `next` behind the policy: preflights answered, allowed origins' calls marked for the browser. */
export function withCors<Q extends Request, S extends Response>(
  policy: CorsPolicy,
  next: (req: Q, res: S) => void,
): (req: Q, res: S) => void {
  const anyOrigin = policy.origins.includes("*");
  const allowed = new Set(policy.origins);
  const methods = cors.allowedMethods.join(", ");
  const allowHeaders = policy.allowHeaders.join(", ");
  const exposeHeaders = policy.exposeHeaders.join(", ");
  const maxAge = String(policy.maxAgeS);
  const allowOrigin = (origin: string) => (anyOrigin ? "*" : allowed.has(origin) ? origin : undefined);

  return (req, res) => {
    const origin = req.headers.origin;
    // The mesh's own calls carry no Origin: one header lookup is all they pay.
    if (origin === undefined) {
      next(req, res);
      return;
    }
    const granted = allowOrigin(origin);
    if (req.method === "OPTIONS" && req.headers["access-control-request-method"] !== undefined) {
      const headers: Record<string, string> = {
        vary: "Origin, Access-Control-Request-Method, Access-Control-Request-Headers",
      };
      if (granted !== undefined) {
        headers["access-control-allow-origin"] = granted;
        headers["access-control-allow-methods"] = methods;
        headers["access-control-allow-headers"] = allowHeaders;
        headers["access-control-max-age"] = maxAge;
      }
      res.writeHead(204, headers);
      res.end();
      return;
    }
    if (!anyOrigin) res.setHeader("vary", "Origin");
    if (granted !== undefined) {
      res.setHeader("access-control-allow-origin", granted);
      res.setHeader("access-control-expose-headers", exposeHeaders);
    }
    next(req, res);
  };
}
