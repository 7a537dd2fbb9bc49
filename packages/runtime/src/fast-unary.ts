// The mesh's own unary calls on a short path: Connect protocol, binary, unary, over h2c, both ends.
//
// connect-es's generic machinery cost ~0.6 ms of CPU on the calling side and ~0.5 ms on the
// answering side for a call whose work is one indexed SELECT (bench/rpc: abort controllers and
// timers per call, a ConnectError built on every completed call, header objects converted twice,
// async iterables around a single message). Every hop of a server build pays that. This file is
// the same protocol (https://connectrpc.com/docs/protocol: POST /<service>/<method>,
// application/proto, errors as JSON with the HTTP status of their code) written for the one case
// the mesh uses between its own processes; anything else (gRPC, gRPC-Web, JSON, compression,
// GET, streams, health, reflection) still goes to connect-node. Either end talks to the other's
// stock implementation: the tests run this client against connect-node's handler and connect-es's
// client against this handler.
import http2 from "node:http2";
import {
  create,
  type DescMessage,
  type DescMethod,
  type DescMethodUnary,
  fromBinary,
  isMessage,
  type MessageInitShape,
  toBinary,
} from "@bufbuild/protobuf";
import {
  Code,
  ConnectError,
  createContextValues,
  type HandlerContext,
  type Transport,
  type UnaryResponse,
} from "@connectrpc/connect";
import {
  codeFromHttpStatus,
  codeToHttpStatus,
  errorFromJsonBytes,
  errorToJsonBytes,
} from "@connectrpc/connect/protocol-connect";
import { currentContext, readContextHeaders, runWithContext, writeContextHeaders } from "./context.js";
import { toConnectError } from "./errors.js";
import type { Logger } from "./log.js";
import type { ServiceBinding } from "./server.js";

const PROTO = "application/proto";

/** STRATUS_RPC_FAST=0 sends every call through connect-es on both ends (to compare, or to rule this out). */
export function fastUnaryEnabled(): boolean {
  return process.env.STRATUS_RPC_FAST !== "0";
}

type Impl = (req: unknown, ctx: HandlerContext) => unknown;
type NodeHandler = (req: http2.Http2ServerRequest, res: http2.Http2ServerResponse) => void;

/**
 * A request handler that answers unary Connect calls in binary to the given services itself and
 * hands every other request to `fallback` (connect-node's adapter, which also answers these).
 */
export function fastUnaryHandler(
  services: ServiceBinding[],
  logger: Logger,
  fallback: NodeHandler,
): NodeHandler {
  const routes = new Map<string, { method: DescMethod; impl: Impl }>();
  for (const b of services) {
    for (const method of b.service.methods) {
      const fn = (b.impl as Record<string, unknown>)[method.localName];
      if (method.methodKind !== "unary" || typeof fn !== "function") continue;
      routes.set(`/${b.service.typeName}/${method.name}`, { method, impl: fn.bind(b.impl) as Impl });
    }
  }
  return (req, res) => {
    const h = req.headers;
    const route = req.method === "POST" ? routes.get(req.url) : undefined;
    const encoding = h["content-encoding"];
    if (!route || h["content-type"] !== PROTO || (encoding !== undefined && encoding !== "identity")) {
      fallback(req, res);
      return;
    }
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const ctx = readContextHeaders({ get: (n) => headerValue(h[n]) });
      runWithContext(ctx, () => answer(route.method, route.impl, chunks, req, res, logger)).catch((err) => {
        // Writing the answer itself failed (the stream went away): nothing left to tell the caller.
        logger.warn({ err, rpc: req.url }, "rpc answer not written");
        res.destroy();
      });
    });
    req.on("error", () => res.destroy());
  };
}

function headerValue(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}

async function answer(
  method: DescMethod,
  impl: Impl,
  chunks: Buffer[],
  req: http2.Http2ServerRequest,
  res: http2.Http2ServerResponse,
  logger: Logger,
): Promise<void> {
  const started = performance.now();
  const rpc = req.url;
  let body: Uint8Array;
  try {
    let input: unknown;
    try {
      input = fromBinary(method.input, chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks));
    } catch (err) {
      throw new ConnectError(`parse binary: ${String((err as Error).message ?? err)}`, Code.InvalidArgument);
    }
    const out = await impl(input, handlerContext(method, req));
    const msg = isMessage(out, method.output)
      ? out
      : create(method.output, out as MessageInitShape<DescMessage>);
    body = toBinary(method.output, msg);
    logger.debug({ rpc, ms: +(performance.now() - started).toFixed(2) }, "rpc ok");
  } catch (err) {
    const ce = rpcFailed(logger, rpc, started, err);
    if (res.closed || res.destroyed) return;
    const headers: Record<string, string> = { "content-type": "application/json" };
    ce.metadata.forEach((v, k) => {
      headers[k] = v;
    });
    res.writeHead(codeToHttpStatus(ce.code), headers);
    res.end(Buffer.from(errorToJsonBytes(ce, {})));
    return;
  }
  if (res.closed || res.destroyed) return;
  res.writeHead(200, { "content-type": PROTO });
  res.end(Buffer.from(body.buffer, body.byteOffset, body.byteLength));
}

/** An RPC's failure as the ConnectError its caller gets, logged (both paths log alike). */
export function rpcFailed(logger: Logger, rpc: string, started: number, err: unknown): ConnectError {
  const ce = toConnectError(err);
  const ms = +(performance.now() - started).toFixed(2);
  if (ce.code === Code.Internal || ce.code === Code.Unknown) logger.error({ rpc, ms, err }, "rpc failed");
  else logger.info({ rpc, ms, code: Code[ce.code], reason: ce.rawMessage }, "rpc refused");
  return ce;
}

/**
 * What connect-node would give an implementation, built only when an implementation asks. A class
 * rather than an object of getters: one object per call instead of one and a closure per member.
 */
class LazyHandlerContext {
  readonly protocolName = "connect";
  readonly requestMethod = "POST";
  readonly service: HandlerContext["service"];
  private readonly deadline: number | undefined;
  private requestHeaders: Headers | undefined;
  private responseHeaders: Headers | undefined;
  private responseTrailers: Headers | undefined;
  private contextValues: ReturnType<typeof createContextValues> | undefined;
  private controller: AbortController | undefined;

  constructor(
    readonly method: DescMethod,
    private readonly req: http2.Http2ServerRequest,
  ) {
    this.service = method.parent;
    const timeout = Number(headerValue(req.headers["connect-timeout-ms"]));
    this.deadline = Number.isFinite(timeout) && timeout > 0 ? Date.now() + timeout : undefined;
  }

  get url(): string {
    return this.req.url;
  }

  get signal(): AbortSignal {
    this.controller ??= new AbortController();
    return this.controller.signal;
  }

  timeoutMs(): number | undefined {
    return this.deadline === undefined ? undefined : this.deadline - Date.now();
  }

  get requestHeader(): Headers {
    if (!this.requestHeaders) {
      this.requestHeaders = new Headers();
      for (const [k, v] of Object.entries(this.req.headers)) {
        if (!k.startsWith(":") && v !== undefined)
          this.requestHeaders.set(k, Array.isArray(v) ? v.join(", ") : v);
      }
    }
    return this.requestHeaders;
  }

  get responseHeader(): Headers {
    this.responseHeaders ??= new Headers();
    return this.responseHeaders;
  }

  get responseTrailer(): Headers {
    this.responseTrailers ??= new Headers();
    return this.responseTrailers;
  }

  get values(): ReturnType<typeof createContextValues> {
    this.contextValues ??= createContextValues();
    return this.contextValues;
  }

  abort(reason?: unknown): void {
    this.controller ??= new AbortController();
    this.controller.abort(reason);
  }
}

function handlerContext(method: DescMethod, req: http2.Http2ServerRequest): HandlerContext {
  return new LazyHandlerContext(method, req) as unknown as HandlerContext;
}

/**
 * A Connect transport whose unary calls take the short path (one pooled HTTP/2 session per base
 * URL); streaming calls go to `streams`, connect-node's transport.
 */
export function fastUnaryTransport(options: {
  baseUrl: string;
  defaultTimeoutMs: number;
  streams: Transport;
}): Transport {
  const base = new URL(options.baseUrl);
  if (base.protocol !== "http:") return options.streams;
  const origin = base.origin;
  const prefix = base.pathname.replace(/\/$/, "");
  let session: http2.ClientHttp2Session | undefined;
  let inFlight = 0;

  const connect = (): http2.ClientHttp2Session => {
    if (session && !session.closed && !session.destroyed) return session;
    const s = http2.connect(origin);
    const drop = () => {
      if (session === s) session = undefined;
    };
    s.on("error", drop);
    s.on("goaway", drop);
    s.on("close", drop);
    s.unref();
    session = s;
    return s;
  };

  return {
    unary<I extends DescMessage, O extends DescMessage>(
      method: DescMethodUnary<I, O>,
      signal: AbortSignal | undefined,
      timeoutMs: number | undefined,
      header: ConstructorParameters<typeof Headers>[0] | undefined,
      input: MessageInitShape<I>,
    ): Promise<UnaryResponse<I, O>> {
      const timeout = timeoutMs ?? options.defaultTimeoutMs;
      const headers: http2.OutgoingHttpHeaders = {
        ":method": "POST",
        ":path": `${prefix}/${method.parent.typeName}/${method.name}`,
        "content-type": PROTO,
        "connect-protocol-version": "1",
      };
      if (timeout > 0) headers["connect-timeout-ms"] = String(timeout);
      const set = (k: string, v: string) => {
        headers[k] = v;
      };
      if (header) {
        for (const [k, v] of new Headers(header)) set(k, v);
      }
      writeContextHeaders({ set }, currentContext());
      const body = toBinary(
        method.input,
        isMessage(input, method.input) ? input : create(method.input, input),
      );

      return new Promise<UnaryResponse<I, O>>((resolve, reject) => {
        if (signal?.aborted) {
          reject(ConnectError.from(signal.reason, Code.Canceled));
          return;
        }
        let s: http2.ClientHttp2Session;
        let stream: http2.ClientHttp2Stream;
        try {
          s = connect();
          stream = s.request(headers);
        } catch (err) {
          reject(new ConnectError(`connect to ${origin}: ${String(err)}`, Code.Unavailable));
          return;
        }
        if (inFlight++ === 0) s.ref();
        let settled = false;
        let timer: NodeJS.Timeout | undefined;
        const onAbort = () => finish(ConnectError.from(signal?.reason, Code.Canceled));
        const finish = (err: ConnectError | undefined, value?: UnaryResponse<I, O>) => {
          if (settled) return;
          settled = true;
          if (timer) clearTimeout(timer);
          signal?.removeEventListener("abort", onAbort);
          if (--inFlight === 0) s.unref();
          if (err) {
            if (!stream.closed) stream.close(http2.constants.NGHTTP2_CANCEL);
            reject(err);
          } else resolve(value!);
        };
        if (timeout > 0) {
          timer = setTimeout(
            () =>
              finish(new ConnectError(`the operation timed out after ${timeout} ms`, Code.DeadlineExceeded)),
            timeout,
          );
        }
        signal?.addEventListener("abort", onAbort);

        let status = 0;
        let responseHeaders: http2.IncomingHttpHeaders = {};
        const chunks: Buffer[] = [];
        stream.on("response", (h) => {
          responseHeaders = h;
          status = Number(h[":status"]);
        });
        stream.on("data", (c: Buffer) => chunks.push(c));
        stream.on("error", (err) => finish(new ConnectError(String(err.message ?? err), Code.Unavailable)));
        stream.on("close", () => {
          if (!settled) finish(new ConnectError("the stream closed before the answer", Code.Unavailable));
        });
        stream.on("end", () => {
          const bytes = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
          const meta = new Headers();
          for (const [k, v] of Object.entries(responseHeaders)) {
            if (!k.startsWith(":") && v !== undefined)
              meta.set(k, Array.isArray(v) ? v.join(", ") : String(v));
          }
          if (status === 200 && responseHeaders["content-type"] === PROTO) {
            let message: ReturnType<typeof fromBinary<O>>;
            try {
              message = fromBinary(method.output, bytes);
            } catch (err) {
              finish(new ConnectError(`parse binary: ${String(err)}`, Code.Internal));
              return;
            }
            finish(undefined, {
              stream: false,
              service: method.parent,
              method,
              header: meta,
              message,
              trailer: new Headers(),
            });
            return;
          }
          const fallback = new ConnectError(`HTTP ${status}`, codeFromHttpStatus(status), meta);
          let err: ConnectError;
          try {
            err = errorFromJsonBytes(bytes, meta, fallback);
          } catch (e) {
            err = e instanceof ConnectError ? e : fallback;
          }
          finish(err);
        });
        stream.end(Buffer.from(body.buffer, body.byteOffset, body.byteLength));
      });
    },
    stream: (method, signal, timeoutMs, header, input, contextValues) =>
      options.streams.stream(method, signal, timeoutMs, header, input, contextValues),
  };
}
