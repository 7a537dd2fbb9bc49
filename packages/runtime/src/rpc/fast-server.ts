// The mesh's own unary calls on a short path, answering side: Connect protocol, binary, unary, over
// h2c. connect-es's generic machinery (abort controllers and timers per call, a ConnectError built
// on every completed call, header objects converted twice, async iterables around a single
// message) cost more CPU than a call whose work is one indexed SELECT, on every hop of a server
// build (docs/performance.md, "Fast unary path"). This is the same protocol written for the one
// case the mesh uses between its own processes; anything else (gRPC, gRPC-Web, JSON, compression,
// GET, streams, health, reflection, a malformed deadline) goes to connect-node. Both run the same
// pipeline (pipeline.ts), and the fast path keeps connect-node's limits: a body over readMaxBytes
// is refused with ResourceExhausted without being kept, the handler's signal aborts when the
// caller's deadline passes (answered DeadlineExceeded) or when the caller goes away.
import http2 from "node:http2";
import { type DescMethodUnary, toBinary } from "@bufbuild/protobuf";
import {
  Code,
  ConnectError,
  type Interceptor,
  type UnaryRequest,
  type UnaryResponse,
} from "@connectrpc/connect";
import { toConnectError } from "../errors.js";
import type { Logger } from "../log.js";
import type { ServiceBinding } from "./binding.js";
import { PROTO, responseHeaders, TIMEOUT_HEADER, TIMEOUT_VALUE, writeError } from "./connect-unary.js";
import { FastCall, isAnswerOf, type UnaryHandler } from "./fast-call.js";
import { aroundHandler } from "./pipeline.js";

type NodeHandler = (req: http2.Http2ServerRequest, res: http2.Http2ServerResponse) => void;

interface Route {
  method: DescMethodUnary;
  /** The pipeline around the implementation, composed once. */
  run: (req: UnaryRequest) => Promise<UnaryResponse>;
}

export interface FastUnaryOptions {
  services: ServiceBinding[];
  /** The pipeline (pipeline.ts): the same list connect-node's adapter runs. */
  pipeline: Interceptor[];
  /** Largest request body read, as connect-node's readMaxBytes. */
  readMaxBytes: number;
  logger: Logger;
  /** connect-node's adapter: answers every request this path does not take. */
  fallback: NodeHandler;
}

/**
 * A request handler that answers unary Connect calls in binary to the given services itself and
 * hands every other request to `fallback`.
 */
export function fastUnaryHandler(options: FastUnaryOptions): NodeHandler {
  const { readMaxBytes, logger, fallback } = options;
  const routes = new Map<string, Route>();
  for (const b of options.services) {
    for (const method of b.service.methods) {
      const fn = (b.impl as Record<string, unknown>)[method.localName];
      if (method.methodKind !== "unary" || typeof fn !== "function") continue;
      const impl = fn.bind(b.impl) as UnaryHandler;
      // The innermost step: the implementation, given the call as its context.
      const invoke = async (req: UnaryRequest) => {
        const call = (req as FastCall).call;
        const message = req === call ? call.message : (req.message ?? call.message);
        return call.answer(await impl(message, call.contextFor(req)));
      };
      routes.set(`/${b.service.typeName}/${method.name}`, {
        method: method as DescMethodUnary,
        run: aroundHandler(invoke, options.pipeline),
      });
    }
  }

  const start = (
    route: Route,
    req: http2.Http2ServerRequest,
    res: http2.Http2ServerResponse,
    body: Buffer,
    deadline: number | undefined,
  ) => {
    const call = new FastCall(route.method, { req, res }, body, deadline, expired);
    res.once("close", () => {
      if (call.settle(() => new ConnectError("the caller went away", Code.Canceled))) {
        logger.debug({ rpc: req.url }, "rpc caller went away");
      }
    });
    let running: Promise<UnaryResponse>;
    try {
      running = route.run(call);
    } catch (err) {
      running = Promise.reject(err);
    }
    running
      .then(
        (answer) => respond(call, answer, logger),
        (err: unknown) => {
          if (!call.settle()) return;
          const { header, trailer } = call.written();
          writeError(res, toConnectError(err), header, trailer);
        },
      )
      .catch((err: unknown) => {
        // Writing the answer itself failed (the stream went away): nothing left to tell the caller.
        logger.warn({ err, rpc: req.url }, "rpc answer not written");
        res.destroy();
      });
  };

  return (req, res) => {
    const h = req.headers;
    const route = req.method === "POST" ? routes.get(req.url) : undefined;
    const encoding = h["content-encoding"];
    const timeout = h[TIMEOUT_HEADER];
    if (
      !route ||
      h["content-type"] !== PROTO ||
      (encoding !== undefined && encoding !== "identity") ||
      (timeout !== undefined && (typeof timeout !== "string" || !TIMEOUT_VALUE.test(timeout)))
    ) {
      fallback(req, res);
      return;
    }
    // The deadline counts from the request's arrival, as connect-node's does.
    const deadline = timeout === undefined ? undefined : Date.now() + Number(timeout);
    const declared = Number(h["content-length"]);
    if (declared > readMaxBytes) {
      refuse(req, res, tooLarge(readMaxBytes, declared));
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    req.on("data", (c: Buffer) => {
      if (size < 0) return; // refused: what still arrives is dropped
      size += c.length;
      if (size > readMaxBytes) {
        size = -1;
        chunks.length = 0;
        refuse(req, res, tooLarge(readMaxBytes));
        return;
      }
      chunks.push(c);
    });
    req.on("end", () => {
      if (size >= 0) {
        start(route, req, res, chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks), deadline);
      }
    });
    req.on("error", () => res.destroy());
  };
}

/** The caller's deadline passed: the handler's signal aborts and the caller hears DeadlineExceeded. */
function expired(call: FastCall): void {
  const err = new ConnectError("the operation timed out", Code.DeadlineExceeded);
  if (call.settle(err)) writeError(call.http.res, err);
}

function respond(call: FastCall, answer: UnaryResponse, logger: Logger): void {
  if (!call.settle()) return;
  const { res } = call.http;
  if (res.closed || res.destroyed) return;
  let body: Uint8Array;
  try {
    body = toBinary(call.method.output, answer.message);
  } catch (err) {
    logger.error({ err, rpc: call.http.req.url }, "rpc answer not encoded");
    writeError(res, new ConnectError("internal error", Code.Internal));
    return;
  }
  const { header, trailer } = isAnswerOf(answer, call) ? call.written() : answer;
  res.writeHead(200, responseHeaders(PROTO, header, trailer));
  res.end(Buffer.from(body.buffer, body.byteOffset, body.byteLength));
}

/** connect-node's refusal of a body over readMaxBytes. */
function tooLarge(readMaxBytes: number, declared?: number): ConnectError {
  const size = declared === undefined ? "" : ` ${declared}`;
  return new ConnectError(
    `message size${size} is larger than configured readMaxBytes ${readMaxBytes}`,
    Code.ResourceExhausted,
  );
}

/**
 * Answers before the request's body is all read; then tells the caller (RST_STREAM with
 * NO_ERROR once the answer is out, RFC 9113 §8.1) to stop sending it.
 */
function refuse(req: http2.Http2ServerRequest, res: http2.Http2ServerResponse, err: ConnectError): void {
  writeError(res, err);
  if (!req.complete) req.stream.close(http2.constants.NGHTTP2_NO_ERROR);
}
