// One call on the fast unary path (fast-server.ts): the request the pipeline's stages see
// (connect-es's UnaryRequest) and the context the implementation gets (HandlerContext) in one
// object, whose parts are built only when something reads them: most calls never read their
// signal, their response headers or their context values, and read only a few request headers.
import type http2 from "node:http2";
import {
  create,
  type DescMessage,
  type DescMethodUnary,
  type DescService,
  fromBinary,
  isMessage,
  type MessageInitShape,
  type MessageShape,
} from "@bufbuild/protobuf";
import {
  Code,
  ConnectError,
  type ContextValues,
  createContextValues,
  type HandlerContext,
  type UnaryRequest,
  type UnaryResponse,
} from "@connectrpc/connect";
import { NodeHeaders } from "./node-headers.js";

export type UnaryHandler = (req: MessageShape<DescMessage>, ctx: HandlerContext) => unknown;

export class FastCall implements UnaryRequest, HandlerContext {
  readonly stream = false;
  readonly requestMethod = "POST";
  readonly protocolName = "connect";
  readonly service: DescService;
  /** The call itself, also on a copy a stage might make of it (pipeline.ts). */
  readonly call: FastCall = this;
  /** Set once the answer (or a refusal) was written, or the caller went away. */
  done = false;
  private parsed: MessageShape<DescMessage> | undefined;
  private requestHeaders: NodeHeaders | undefined;
  private controller: AbortController | undefined;
  /** Why the call ended, for a signal first asked for after that. */
  private endedWith: unknown;
  private contextValuesOf: ContextValues | undefined;
  private responseHeaders: Headers | undefined;
  private responseTrailers: Headers | undefined;
  private readonly deadline: number | undefined;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    readonly method: DescMethodUnary,
    readonly http: { req: http2.Http2ServerRequest; res: http2.Http2ServerResponse },
    private readonly body: Buffer,
    /** When the caller's deadline passes (Date.now() time), if it gave one. */
    deadline: number | undefined,
    onDeadline: (call: FastCall) => void,
  ) {
    this.service = method.parent;
    this.deadline = deadline;
    if (deadline !== undefined) this.timer = setTimeout(onDeadline, Math.max(0, deadline - Date.now()), this);
  }

  /**
   * The request message, decoded when first read (by the handler, or a stage before it); an
   * undecodable body throws InvalidArgument there, inside the pipeline.
   */
  get message(): MessageShape<DescMessage> {
    if (!this.parsed) {
      try {
        this.parsed = fromBinary(this.method.input, this.body);
      } catch (err) {
        throw new ConnectError(
          `parse binary: ${String((err as Error).message ?? err)}`,
          Code.InvalidArgument,
        );
      }
    }
    return this.parsed;
  }

  /** As connect-node gives it: http(s)://<authority>/<service>/<method>, https over TLS. */
  get url(): string {
    const { req } = this.http;
    const h = req.headers;
    const scheme = (req.socket as { encrypted?: boolean }).encrypted ? "https" : "http";
    return `${scheme}://${h[":authority"] ?? h.host ?? ""}${req.url}`;
  }

  get header(): Headers {
    this.requestHeaders ??= new NodeHeaders(this.http.req.headers);
    return this.requestHeaders;
  }

  get requestHeader(): Headers {
    return this.header;
  }

  get signal(): AbortSignal {
    if (!this.controller) {
      this.controller = new AbortController();
      if (this.done) this.controller.abort(this.endedWith);
    }
    return this.controller.signal;
  }

  get contextValues(): ContextValues {
    this.contextValuesOf ??= createContextValues();
    return this.contextValuesOf;
  }

  get values(): ContextValues {
    return this.contextValues;
  }

  get responseHeader(): Headers {
    this.responseHeaders ??= new Headers();
    return this.responseHeaders;
  }

  get responseTrailer(): Headers {
    this.responseTrailers ??= new Headers();
    return this.responseTrailers;
  }

  /** The response headers and trailers something set, if anything did. */
  written(): { header: Headers | undefined; trailer: Headers | undefined } {
    return { header: this.responseHeaders, trailer: this.responseTrailers };
  }

  timeoutMs(): number | undefined {
    return this.deadline === undefined ? undefined : this.deadline - Date.now();
  }

  /**
   * The call is answered or abandoned: no deadline any more, and the signal, if anyone holds it,
   * aborted (as connect-node does once a call is over). False if it was settled already. The
   * reason may be given as what builds it, so that the common case (the stream closes after the
   * answer) does not build an error, with its stack, only to drop it.
   */
  settle(reason?: ConnectError | (() => ConnectError)): boolean {
    if (this.done) return false;
    this.done = true;
    if (typeof reason === "function") reason = reason();
    this.endedWith = reason;
    if (this.timer) clearTimeout(this.timer);
    this.controller?.abort(reason);
    return true;
  }

  /** The context the implementation gets when a stage passed on a copy of the request. */
  contextFor(req: UnaryRequest): HandlerContext {
    if (req === this) return this;
    return {
      method: this.method,
      service: req.service ?? this.service,
      signal: req.signal ?? this.signal,
      timeoutMs: () => this.timeoutMs(),
      requestMethod: this.requestMethod,
      requestHeader: req.header ?? this.header,
      responseHeader: this.responseHeader,
      responseTrailer: this.responseTrailer,
      protocolName: this.protocolName,
      values: req.contextValues ?? this.contextValues,
      url: req.url ?? this.url,
    };
  }

  /** The response the pipeline's stages see for the implementation's answer. */
  answer(out: unknown): UnaryResponse {
    const output = this.method.output;
    const message = isMessage(out, output) ? out : create(output, out as MessageInitShape<DescMessage>);
    return new FastAnswer(this, message);
  }
}

/** An implementation's answer; its header and trailer are the call's, built when first read. */
class FastAnswer implements UnaryResponse {
  readonly stream = false;
  readonly method: DescMethodUnary;
  readonly service: DescService;

  constructor(
    readonly call: FastCall,
    readonly message: MessageShape<DescMessage>,
  ) {
    this.method = call.method;
    this.service = call.service;
  }

  get header(): Headers {
    return this.call.responseHeader;
  }

  get trailer(): Headers {
    return this.call.responseTrailer;
  }
}

/** Whether a response is the one FastCall.answer made for `call` (its headers are the call's). */
export function isAnswerOf(res: UnaryResponse, call: FastCall): boolean {
  return res instanceof FastAnswer && res.call === call;
}
