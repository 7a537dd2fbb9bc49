// Reading a REST request's body: a size limit (checked on the declared length and while reading)
// and JSON parsing that never throws anything but a client error, with the depth and content
// checks of json-text.ts made before JSON.parse.
//
// A body over the limit is refused at once, but what the client is still sending is read and
// dropped (up to REFUSED_BODY_READ_BYTES), as mature HTTP servers do (nginx's lingering close):
// closing a connection with unread data makes the kernel reset it, and a client that writes its
// whole body before reading (Python's http.client, requests) then sees a broken pipe instead of
// the 413. Past that bound, or when the declared length is already past it, the connection is
// closed.
import type { IncomingMessage } from "node:http";
import { StratusError } from "../errors.js";
import { checkJsonText } from "./json-text.js";

/** How much of a refused body is still read and dropped before the connection is closed. */
export const REFUSED_BODY_READ_BYTES = 16 * 1024 * 1024;

/** A failure that is HTTP-level only (no StratusError kind): 405, 413, 415. */
export class HttpFault extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

export class BodyTooLarge extends HttpFault {
  /**
   * @param closeConnection the rest of the body will not be read: the answer must close the
   * connection (otherwise the connection stays usable once the body has been dropped).
   */
  constructor(readonly closeConnection: boolean) {
    super(413, "Request is too large.");
  }
}

export function readBody(
  req: IncomingMessage,
  limit: number,
  refusedReadBytes = REFUSED_BODY_READ_BYTES,
): Promise<Buffer> {
  const declared = Number(req.headers["content-length"]);
  if (Number.isFinite(declared) && declared > limit) {
    if (declared > refusedReadBytes) return Promise.reject(new BodyTooLarge(true));
    drop(req, refusedReadBytes);
    return Promise.reject(new BodyTooLarge(false));
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size <= limit) {
        chunks.push(chunk);
        return;
      }
      req.off("data", onData).off("end", onEnd).off("error", onError);
      chunks.length = 0;
      drop(req, refusedReadBytes - size);
      reject(new BodyTooLarge(false));
    };
    const onEnd = () => resolve(Buffer.concat(chunks));
    const onError = (err: Error) => reject(err);
    req.on("data", onData).on("end", onEnd).on("error", onError);
  });
}

/** Reads and drops the rest of a refused body; past `budget` more bytes the connection is closed. */
function drop(req: IncomingMessage, budget: number): void {
  let left = budget;
  req.on("data", (chunk: Buffer) => {
    left -= chunk.length;
    if (left < 0) req.socket.destroy();
  });
  // A client that goes away while its refused body is dropped is no error of ours.
  req.on("error", () => {});
  if (budget < 0) req.socket.destroy();
}

const utf8 = new TextDecoder("utf-8", { fatal: true });

/**
 * The body as JSON (undefined when empty); 415 for a non-JSON content type, 400 for bytes that are
 * not UTF-8, text json-text.ts refuses, or bad JSON.
 */
export function parseJsonBody(raw: Buffer, contentType: string | undefined): unknown {
  if (raw.length === 0) return undefined;
  if (contentType) {
    const type = contentType.split(";")[0]!.trim().toLowerCase();
    if (type && type !== "application/json" && !type.endsWith("+json") && type !== "text/plain") {
      throw new HttpFault(415, `Unsupported Content-Type`);
    }
  }
  let text: string;
  try {
    text = utf8.decode(raw);
  } catch {
    throw new StratusError("invalid_input", "Malformed request body: not UTF-8.");
  }
  checkJsonText(text);
  try {
    return JSON.parse(text);
  } catch {
    throw new StratusError("invalid_input", "Malformed request body");
  }
}
