// The mesh's own unary calls on a short path, calling side: the same Connect protocol as
// fast-server.ts, without connect-es's per-call machinery. Its HTTP/2 connection is connect-node's
// Http2SessionManager, shared with connect-node's transport for everything else: keepalive PINGs
// while calls are open, a PING before a call on a connection silent for longer than the interval,
// GOAWAY handled (calls in flight finish on the old connection, new ones open a new one), idle
// connections closed. Either end talks to the other's stock implementation: the tests run this
// client against connect-node's handler and connect-es's client against fast-server.ts.
import http2 from "node:http2";
import {
  create,
  type DescMessage,
  type DescMethodUnary,
  fromBinary,
  isMessage,
  type MessageInitShape,
  toBinary,
} from "@bufbuild/protobuf";
import { Code, ConnectError, type Transport, type UnaryResponse } from "@connectrpc/connect";
import { codeFromHttpStatus, errorFromJsonBytes } from "@connectrpc/connect/protocol-connect";
import type { Http2SessionManager } from "@connectrpc/connect-node";
import { writeNotAfter, writeRequestId } from "../context.js";
import { writeTraceContext } from "../tracing.js";
import { PROTO, TIMEOUT_HEADER } from "./connect-unary.js";
import { webHeaders } from "./node-headers.js";
import { peerSessionManager } from "./session-manager.js";

/** How a call ends badly: an error, or what builds it when it is still needed; none for an answer. */
type Failure = ConnectError | (() => ConnectError) | undefined;

/**
 * A Connect transport whose unary calls take the short path; streaming calls go to `streams`
 * (connect-node's transport, over the same session manager).
 */
export function fastUnaryTransport(options: {
  baseUrl: string;
  /** The deadline of a call whose caller gives none (0: none). */
  defaultTimeoutMs: number;
  streams: Transport;
  /** The connection to the peer, TLS options included for https:// (client.ts makes it). */
  sessionManager?: Http2SessionManager;
  /** Writes the caller's credential headers of each call (client.ts); none when absent. */
  callerHeaders?: (headers: { set(name: string, value: string): void }) => void;
}): Transport {
  const base = new URL(options.baseUrl);
  if (base.protocol !== "http:" && base.protocol !== "https:") return options.streams;
  const sessions = options.sessionManager ?? peerSessionManager(base.origin);
  const origin = base.origin;
  const prefix = base.pathname.replace(/\/$/, "");

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
        "content-type": PROTO,
        "connect-protocol-version": "1",
      };
      if (timeout > 0) headers[TIMEOUT_HEADER] = String(timeout);
      const set = (k: string, v: string) => {
        headers[k] = v;
      };
      if (header) {
        for (const [k, v] of new Headers(header)) set(k, v);
      }
      writeRequestId({ set });
      writeNotAfter({ set });
      writeTraceContext({ set });
      options.callerHeaders?.({ set });
      const body = toBinary(
        method.input,
        isMessage(input, method.input) ? input : create(method.input, input),
      );
      const path = `${prefix}/${method.parent.typeName}/${method.name}`;

      return new Promise<UnaryResponse<I, O>>((resolve, reject) => {
        if (signal?.aborted) {
          reject(ConnectError.from(signal.reason, Code.Canceled));
          return;
        }
        let stream: http2.ClientHttp2Stream | undefined;
        let settled = false;
        let timer: NodeJS.Timeout | undefined;
        const onAbort = () => finish(ConnectError.from(signal?.reason, Code.Canceled));
        const finish = (failure: Failure, value?: UnaryResponse<I, O>) => {
          if (settled) return;
          settled = true;
          const err = typeof failure === "function" ? failure() : failure;
          if (timer) clearTimeout(timer);
          signal?.removeEventListener("abort", onAbort);
          if (err) {
            if (stream && !stream.closed) stream.close(http2.constants.NGHTTP2_CANCEL);
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

        sessions.request("POST", path, headers, {}).then(
          (s) => {
            stream = s;
            if (settled) {
              s.close(http2.constants.NGHTTP2_CANCEL);
              return;
            }
            read(s, method, sessions, finish);
            s.end(Buffer.from(body.buffer, body.byteOffset, body.byteLength));
          },
          (err: unknown) => {
            const reason = err instanceof Error ? err.message : String(err);
            // The cause says why (ECONNREFUSED …): serviceClient tries another replica only
            // when no connection could be made.
            finish(
              new ConnectError(
                `connect to ${origin}: ${reason}`,
                Code.Unavailable,
                undefined,
                undefined,
                err,
              ),
            );
          },
        );
      });
    },
    stream: (method, signal, timeoutMs, header, input, contextValues) =>
      options.streams.stream(method, signal, timeoutMs, header, input, contextValues),
  };
}

/** Reads the answer of a unary call from its stream: the message, or the error it carries. */
function read<I extends DescMessage, O extends DescMessage>(
  stream: http2.ClientHttp2Stream,
  method: DescMethodUnary<I, O>,
  sessions: Http2SessionManager,
  finish: (failure: Failure, value?: UnaryResponse<I, O>) => void,
): void {
  let status = 0;
  let responseHeaders: http2.IncomingHttpHeaders = {};
  const chunks: Buffer[] = [];
  stream.on("response", (h) => {
    responseHeaders = h;
    status = Number(h[":status"]);
  });
  stream.on("data", (c: Buffer) => {
    chunks.push(c);
    sessions.notifyResponseByteRead(stream);
  });
  stream.on("error", (err) => finish(new ConnectError(String(err.message ?? err), Code.Unavailable)));
  // Every stream closes, most after their answer: the error is built only if it is still needed.
  stream.on("close", () =>
    finish(() => new ConnectError("the stream closed before the answer", Code.Unavailable)),
  );
  stream.on("end", () => {
    // Ended with no answer at all: the peer went away (killed, connection reset), as on "close".
    if (status === 0) {
      finish(new ConnectError("the stream ended before the answer", Code.Unavailable));
      return;
    }
    const bytes = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
    const meta = webHeaders(responseHeaders);
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
}
