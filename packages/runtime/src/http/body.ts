// Reading a REST request's body: a size limit (checked on the declared length and while reading)
// and JSON parsing that never throws anything but a client error.
import type { IncomingMessage } from "node:http";
import { StratusError } from "../errors.js";

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
  constructor() {
    super(413, "Request is too large.");
  }
}

export function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  const declared = Number(req.headers["content-length"]);
  if (Number.isFinite(declared) && declared > limit) return Promise.reject(new BodyTooLarge());
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let failed = false;
    req.on("data", (chunk: Buffer) => {
      if (failed) return;
      size += chunk.length;
      if (size > limit) {
        failed = true;
        reject(new BodyTooLarge());
        return;
      }
      chunks.push(chunk);
    });
    req.on("end", () => {
      if (!failed) resolve(Buffer.concat(chunks));
    });
    req.on("error", (err) => {
      if (!failed) {
        failed = true;
        reject(err);
      }
    });
  });
}

/** The body as JSON (undefined when empty); 415 for a non-JSON content type, 400 for bad JSON. */
export function parseJsonBody(raw: Buffer, contentType: string | undefined): unknown {
  if (raw.length === 0) return undefined;
  if (contentType) {
    const type = contentType.split(";")[0]!.trim().toLowerCase();
    if (type && type !== "application/json" && !type.endsWith("+json") && type !== "text/plain") {
      throw new HttpFault(415, `Unsupported Content-Type`);
    }
  }
  try {
    return JSON.parse(raw.toString("utf8"));
  } catch {
    throw new StratusError("invalid_input", "Malformed request body");
  }
}
