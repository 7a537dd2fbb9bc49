// Headers between node's http2 objects and the fetch API's Headers that connect-es speaks.
import type http2 from "node:http2";

/**
 * A fetch API Headers view of a request's node headers: get and has read node's object directly;
 * anything else (iterating, changing) first copies them into a real Headers, once. Reading a few
 * headers of every call (the pipeline's request context) then costs no copy.
 */
export class NodeHeaders implements Headers {
  private copy: Headers | undefined;

  constructor(private readonly raw: http2.IncomingHttpHeaders) {}

  private headers(): Headers {
    this.copy ??= webHeaders(this.raw);
    return this.copy;
  }

  get(name: string): string | null {
    if (this.copy) return this.copy.get(name);
    const key = name.toLowerCase();
    if (key.startsWith(":")) return null;
    const v = this.raw[key];
    return v === undefined ? null : Array.isArray(v) ? v.join(", ") : v;
  }

  has(name: string): boolean {
    return this.get(name) !== null;
  }

  set(name: string, value: string): void {
    this.headers().set(name, value);
  }
  append(name: string, value: string): void {
    this.headers().append(name, value);
  }
  delete(name: string): void {
    this.headers().delete(name);
  }
  getSetCookie(): string[] {
    return this.headers().getSetCookie();
  }
  forEach(callbackfn: (value: string, key: string, iterable: Headers) => void, thisArg?: unknown): void {
    this.headers().forEach((value, key) => {
      callbackfn.call(thisArg, value, key, this);
    });
  }
  keys() {
    return this.headers().keys();
  }
  values() {
    return this.headers().values();
  }
  entries() {
    return this.headers().entries();
  }
  [Symbol.iterator]() {
    return this.headers()[Symbol.iterator]();
  }
}

/** Node's headers (request or response) as a Headers, pseudo-headers left out. */
export function webHeaders(raw: http2.IncomingHttpHeaders): Headers {
  const h = new Headers();
  for (const [k, v] of Object.entries(raw)) {
    if (!k.startsWith(":") && v !== undefined) h.set(k, Array.isArray(v) ? v.join(", ") : String(v));
  }
  return h;
}
