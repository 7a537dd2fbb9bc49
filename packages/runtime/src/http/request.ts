// Parts of an incoming REST request every edge reads the same way: the URL and its decoded path
// segments, single header values and the Host header as a safe base for links.
import type { IncomingMessage } from "node:http";
import type { TLSSocket } from "node:tls";
import { StratusError } from "../errors.js";

/** The request's URL; 400 when it cannot be parsed. */
export function requestUrl(req: IncomingMessage): URL {
  try {
    return new URL(req.url ?? "/", "http://stratus.invalid");
  } catch {
    throw new StratusError("invalid_input", "Malformed request URL");
  }
}

/** The path's non-empty segments, percent-decoded; 400 on a bad escape. */
export function decodeSegments(pathname: string): string[] {
  return pathname
    .split("/")
    .filter(Boolean)
    .map((s) => {
      try {
        return decodeURIComponent(s);
      } catch {
        throw new StratusError("invalid_input", "Malformed request URL");
      }
    });
}

/** The first value of a header. */
export function header(req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

/**
 * http(s)://<Host header> (https when the request came over TLS), or 127.0.0.1 when the header is
 * absent or not a plain host[:port].
 */
export function hostBaseUrl(req: IncomingMessage): string {
  const host = req.headers.host;
  const scheme = (req.socket as TLSSocket).encrypted ? "https" : "http";
  return `${scheme}://${host && /^[A-Za-z0-9.:[\]-]{1,300}$/.test(host) ? host : "127.0.0.1"}`;
}
