// The part of the Connect protocol (https://connectrpc.com/docs/protocol) both ends of the fast
// unary path speak: POST /<service>/<method>, binary protobuf bodies, a deadline header, errors as
// JSON with the HTTP status of their code, trailers as `trailer-` headers.
import type http2 from "node:http2";
import type { ConnectError } from "@connectrpc/connect";
import { codeToHttpStatus, errorToJsonBytes } from "@connectrpc/connect/protocol-connect";

export const PROTO = "application/proto";
export const TIMEOUT_HEADER = "connect-timeout-ms";
/** A valid deadline header value (connect-es's own check). */
export const TIMEOUT_VALUE = /^\d{1,10}$/;

/** Response headers: the content type, then the headers and trailers a handler set, if any. */
export function responseHeaders(
  contentType: string,
  header: Headers | undefined,
  trailer: Headers | undefined,
): http2.OutgoingHttpHeaders {
  const out: http2.OutgoingHttpHeaders = { "content-type": contentType };
  header?.forEach((v, k) => {
    if (k !== "content-type") out[k] = v;
  });
  trailer?.forEach((v, k) => {
    out[`trailer-${k}`] = v;
  });
  return out;
}

/** Writes an error answer (its metadata as headers), unless the stream is gone already. */
export function writeError(
  res: http2.Http2ServerResponse,
  err: ConnectError,
  header?: Headers,
  trailer?: Headers,
): void {
  if (res.closed || res.destroyed || res.headersSent) return;
  const headers = responseHeaders("application/json", header, trailer);
  err.metadata.forEach((v, k) => {
    headers[k] = v;
  });
  res.writeHead(codeToHttpStatus(err.code), headers);
  res.end(Buffer.from(errorToJsonBytes(err, {})));
}
