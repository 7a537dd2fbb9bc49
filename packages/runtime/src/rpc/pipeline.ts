// The one RPC pipeline: the connect-es interceptors every call a service answers runs through,
// whichever way it came in. connect-node's adapter (Connect, gRPC, gRPC-Web) runs this list, and so
// does the fast unary path (fast-server.ts), so a concern added here (authentication, metrics,
// tracing) sees every call of the mesh and nothing can go around it.
//
// Stages, outermost first:
//   1. requestContext  the caller's request id, read from the request headers, in a context with
//                      no rights yet; all later stages run inside it (every log line carries it).
//   1b. tracing       a server span continuing the caller's trace, when tracing is on (tracing.ts).
//   2. metrics         the call's duration and status code in stratus_rpc_server_duration_seconds
//                      (metrics.ts), whatever stage ended it: refusals of the stages below count.
//   3. outcome         logs how the call ended and maps what it threw to the ConnectError its
//                      caller gets (a StratusError's kind to its code, with the kind in a trailer).
//   4. authentication  the caller's bearer token validated, its principal made (a user, or a
//                      service acting as itself), the method's policy applied; the handler runs in
//                      the principal's context. No token or an invalid one: Unauthenticated; a
//                      principal the policy does not allow: PermissionDenied. Health and
//                      reflection are open.
//   4b. not after      a call whose caller said when it must not be started any more
//                      (`stratus-not-after`: a conductor run's lease end) and that arrives, or
//                      gets this far, after that time is refused (unavailable) before its
//                      handler runs: a peer that stalled with the call in its socket must not act
//                      on it once another run may have taken the build over.
//   5. input           the request message walked by its descriptor (input-validation.ts): text
//                      no store can keep, over-long strings and over-long lists and maps are
//                      refused (invalid_input) before any handler sees them.
//   6. the service's own interceptors, if any, then the handler.
//
// A stage passes the request it was given to the next one, not a copy: on the fast path its
// header, signal and contextValues are computed when first read. What a stage wants to hand on
// goes in req.contextValues.
import {
  Code,
  ConnectError,
  type Interceptor,
  type UnaryRequest,
  type UnaryResponse,
} from "@connectrpc/connect";
import type { CallAuthentication } from "../auth/rpc-authentication.js";
import {
  anonymousContext,
  contextFor,
  currentContext,
  NOT_AFTER_HEADER,
  readRequestId,
  runWithContext,
} from "../context.js";
import { StratusError, toConnectError } from "../errors.js";
import type { Logger } from "../log.js";
import { rpcServerDuration } from "../metrics.js";
import { inSpan, SpanKind } from "../tracing.js";
import { type InputBounds, inputBoundsFromEnvironment, inputValidation } from "./input-validation.js";

/** Stage 1: the request context of the caller (context.ts), around everything after it. */
export function requestContext(): Interceptor {
  return (next) => (req) => runWithContext(anonymousContext(readRequestId(req.header)), () => next(req));
}

/**
 * Stage 1b: the call as a server span continuing the caller's trace (`traceparent`), when tracing
 * is on (tracing.ts); off, it passes the call on.
 */
export function tracing(): Interceptor {
  return (next) => (req) =>
    inSpan(
      `${req.service.typeName}/${req.method.name}`,
      SpanKind.SERVER,
      req.header,
      { "rpc.system": "connect_rpc", "rpc.service": req.service.typeName, "rpc.method": req.method.name },
      () => next(req),
    );
}

/**
 * Stage 2: each call's duration by service, method and code. Outside `outcome`, so what it throws
 * is already the ConnectError the caller gets. A server stream is timed until its response starts.
 */
export function metrics(): Interceptor {
  return (next) => async (req) => {
    const started = performance.now();
    let code = "OK";
    try {
      return await next(req);
    } catch (err) {
      code = Code[err instanceof ConnectError ? err.code : Code.Unknown];
      throw err;
    } finally {
      rpcServerDuration.observe(
        { rpc_service: req.service.typeName, rpc_method: req.method.name, code },
        (performance.now() - started) / 1000,
      );
    }
  };
}

/** Stage 3: each call's outcome logged, and its failure as the ConnectError its caller gets. */
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

/** What anyone may call without a credential: health checks and reflection (the schema). */
export const OPEN_SERVICES: ReadonlySet<string> = new Set([
  "grpc.health.v1.Health",
  "grpc.reflection.v1.ServerReflection",
  "grpc.reflection.v1alpha.ServerReflection",
]);

/** Stage 4: who the caller is and whether it may make this call (design.md §6). */
export function authentication(auth: CallAuthentication): Interceptor {
  return (next) => async (req) => {
    const service = req.service.typeName;
    if (OPEN_SERVICES.has(service)) return next(req);
    const principal = await auth.principalOf(req.header);
    auth.authorize(principal, service, req.method.name);
    const requestId = currentContext()?.requestId ?? readRequestId(req.header);
    return runWithContext(contextFor(requestId, principal), () => next(req));
  };
}

/**
 * Stage 4b: refuses a call that reaches its handler after its `stratus-not-after` (ms since the
 * epoch, the caller's clock: hosts' clocks are assumed synchronized to well within the margin a
 * caller leaves). A value that is not a whole number is refused as invalid input.
 */
export function notAfter(now: () => number = Date.now): Interceptor {
  return (next) => (req) => {
    const value = req.header.get(NOT_AFTER_HEADER);
    if (value === null) return next(req);
    if (!/^\d{1,15}$/.test(value))
      throw new StratusError("invalid_input", `${NOT_AFTER_HEADER} is not a time`);
    if (now() > Number(value))
      throw new StratusError("unavailable", "the call arrived after the time its caller allowed for it");
    return next(req);
  };
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
  auth: CallAuthentication;
  interceptors?: Interceptor[];
  inputBounds?: InputBounds;
}): Interceptor[] {
  return [
    requestContext(),
    tracing(),
    metrics(),
    outcome(options.logger),
    authentication(options.auth),
    notAfter(),
    inputValidation(options.inputBounds ?? inputBoundsFromEnvironment()),
    ...(options.interceptors ?? []),
  ];
}
