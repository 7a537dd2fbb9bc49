// What a REST edge answers when a request fails, whatever its body's format (the compute API's
// Nova faults, the identity's Keystone errors): the status, a message fit for the client, and the
// headers that go with it. A client error keeps its message. A server error says nothing of what
// failed inside (no address, no stack, no internal message field): a 503 says which kind of
// service is unavailable, with Retry-After; a 501 that the operation is not implemented; anything
// else is a 500 with the edge's own words.
// Every 5xx is logged with the request id and its cause.
import { isStratusError, StratusError } from "../errors.js";
import type { Logger } from "../log.js";
import { BodyTooLarge, HttpFault } from "./body.js";

/** Seconds a client is asked to wait before trying again after a 503. */
export const RETRY_AFTER_S = 5;

/**
 * A peer (or a part of this service) the edge needs is unavailable; `service` names its kind as
 * a client knows it ("compute", "network", "identity").
 */
export class ServiceUnavailable extends StratusError {
  constructor(
    readonly service: string,
    options?: { cause?: unknown },
  ) {
    super("unavailable", `The ${service} service is unavailable, try again later.`, options);
  }
}

export interface RestFault {
  status: number;
  message: string;
  headers: Record<string, string>;
}

export interface FaultPolicy {
  logger: Logger;
  requestId: string;
  /** The kind of service a 503 names when the error does not say (the edge's own). */
  service: string;
  /** The message of a 500. */
  unexpected: string;
}

export function restFault(err: unknown, policy: FaultPolicy): RestFault {
  if (err instanceof HttpFault) {
    const headers: Record<string, string> =
      err instanceof BodyTooLarge && err.closeConnection ? { connection: "close" } : {};
    return { status: err.status, message: err.message, headers };
  }
  const { logger, requestId } = policy;
  if (isStratusError(err) && err.httpStatus < 500) {
    return { status: err.httpStatus, message: err.message, headers: {} };
  }
  if (isStratusError(err, "unavailable")) {
    logger.warn({ err, request_id: requestId }, "request failed: a service is unavailable");
    const service = err instanceof ServiceUnavailable ? err.service : policy.service;
    return {
      status: 503,
      message: new ServiceUnavailable(service).message,
      headers: { "retry-after": String(RETRY_AFTER_S) },
    };
  }
  if (isStratusError(err, "unimplemented")) {
    logger.warn({ err, request_id: requestId }, "request failed: not implemented");
    return { status: 501, message: "The requested operation is not implemented.", headers: {} };
  }
  logger.error({ err, request_id: requestId }, "request failed");
  return { status: 500, message: policy.unexpected, headers: {} };
}
