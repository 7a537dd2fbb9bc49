// The one RPC pipeline: the connect-es interceptors every call a service answers runs through,
// whichever way it came in. connect-node's adapter (Connect, gRPC, gRPC-Web) runs this list, and so
// does the fast unary path (fast-server.ts), so a concern added here (authentication, metrics,
// tracing) sees every call of the mesh and nothing can go around it.
//
// Stages, outermost first:
//   1. requestContext  the caller's request id and identity, read from the request headers; all
//                      later stages and the handler run inside it (and every log line carries it).
//   2. outcome         logs how the call ended and maps what it threw to the ConnectError its
//                      caller gets (a StratusError's kind to its code, with the kind in a trailer).
//   3. authentication  where the caller's credential will be checked (design.md §6); today every
//                      call passes.
//   4. input           the request message walked by its descriptor (input-validation.ts): text
//                      no store can keep, over-long strings and over-long lists and maps are
//                      refused (invalid_input) before any handler sees them.
//   5. the service's own interceptors, if any, then the handler.
//
// A stage passes the request it was given to the next one, not a copy: on the fast path its
// header, signal and contextValues are computed when first read. What a stage wants to hand on
// goes in req.contextValues.
import {
  Code,
  type ConnectError,
  type Interceptor,
  type UnaryRequest,
  type UnaryResponse,
} from "@connectrpc/connect";
import { readContextHeaders, runWithContext } from "../context.js";
import { toConnectError } from "../errors.js";
import type { Logger } from "../log.js";
import { type InputBounds, inputBoundsFromEnvironment, inputValidation } from "./input-validation.js";

/** Stage 1: the request context of the caller (context.ts), around everything after it. */
export function requestContext(): Interceptor {
  return (next) => (req) => runWithContext(readContextHeaders(req.header), () => next(req));
}

/** Stage 2: each call's outcome logged, and its failure as the ConnectError its caller gets. */
export function outcome(logger: Logger): Interceptor {
  return (next) => async (req) => {
    const started = performance.now();
    try {
      const res = await next(req);
      if (logger.isLevelEnabled("debug")) {
        logger.debug({ rpc: req.url, ms: +(performance.now() - started).toFixed(2) }, "rpc ok");
      }
      return res;
    } catch (err) {
      throw rpcFailed(logger, req.url, started, err);
    }
  };
}

/** Stage 3: authentication. Every call passes until callers carry credentials (design.md §6). */
export function authentication(): Interceptor {
  return (next) => next;
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
 * `handler` inside the pipeline, composed once (what connect-es does for each call): the first
 * interceptor is the outermost.
 */
export function aroundHandler<F extends (req: UnaryRequest) => Promise<UnaryResponse>>(
  handler: F,
  pipeline: Interceptor[],
): F {
  let next = handler as unknown as Parameters<Interceptor>[0];
  for (let i = pipeline.length - 1; i >= 0; i--) next = pipeline[i]!(next);
  return next as unknown as F;
}

/**
 * The pipeline a server runs: the stages above, then `interceptors` (innermost last). The input
 * stage's bounds are the environment's (RPC_MAX_STRING_LENGTH, RPC_MAX_ENTRIES) unless given.
 */
export function rpcPipeline(options: {
  logger: Logger;
  interceptors?: Interceptor[];
  inputBounds?: InputBounds;
}): Interceptor[] {
  return [
    requestContext(),
    outcome(options.logger),
    authentication(),
    inputValidation(options.inputBounds ?? inputBoundsFromEnvironment()),
    ...(options.interceptors ?? []),
  ];
}
