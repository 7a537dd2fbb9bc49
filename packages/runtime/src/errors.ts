// One error vocabulary for the whole mesh (design.md §5), mapped once to Connect codes and once
// to Nova-style HTTP fault bodies. Domain code throws StratusError; the edges translate.
import { Code, ConnectError } from "@connectrpc/connect";

export type ErrorKind =
  | "invalid_input"
  | "not_found"
  | "conflict"
  | "quota_exceeded"
  | "no_valid_host"
  | "port_in_use"
  | "ip_exhausted"
  | "version_not_acceptable"
  | "forbidden"
  | "unauthorized"
  | "unavailable"
  | "unimplemented"
  /** What was asked for existed but is no longer kept (a watch resumed from an expired cursor). */
  | "gone"
  | "internal";

interface KindInfo {
  code: Code;
  status: number;
}

const KINDS: Record<ErrorKind, KindInfo> = {
  invalid_input: { code: Code.InvalidArgument, status: 400 },
  not_found: { code: Code.NotFound, status: 404 },
  conflict: { code: Code.Aborted, status: 409 },
  quota_exceeded: { code: Code.ResourceExhausted, status: 403 },
  no_valid_host: { code: Code.FailedPrecondition, status: 500 },
  port_in_use: { code: Code.AlreadyExists, status: 409 },
  ip_exhausted: { code: Code.ResourceExhausted, status: 409 },
  version_not_acceptable: { code: Code.InvalidArgument, status: 406 },
  forbidden: { code: Code.PermissionDenied, status: 403 },
  unauthorized: { code: Code.Unauthenticated, status: 401 },
  unavailable: { code: Code.Unavailable, status: 503 },
  unimplemented: { code: Code.Unimplemented, status: 501 },
  gone: { code: Code.OutOfRange, status: 410 },
  internal: { code: Code.Internal, status: 500 },
};

/** The response metadata that carries a StratusError's kind to its caller. */
export const KIND_HEADER = "x-stratus-error-kind";

export class StratusError extends Error {
  override readonly name = "StratusError";
  constructor(
    readonly kind: ErrorKind,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }

  get httpStatus(): number {
    return KINDS[this.kind].status;
  }
}

export const invalidInput = (message: string) => new StratusError("invalid_input", message);
export const notFound = (message: string) => new StratusError("not_found", message);
export const conflict = (message: string) => new StratusError("conflict", message);

export function isStratusError(err: unknown, kind?: ErrorKind): err is StratusError {
  return err instanceof StratusError && (kind === undefined || err.kind === kind);
}

/** StratusError → ConnectError, keeping the kind in a trailer so the caller gets it back exactly. */
export function toConnectError(err: unknown): ConnectError {
  if (err instanceof ConnectError) return err;
  if (err instanceof StratusError) {
    const ce = new ConnectError(err.message, KINDS[err.kind].code);
    ce.metadata.set(KIND_HEADER, err.kind);
    return ce;
  }
  return new ConnectError("internal error", Code.Internal, undefined, undefined, err);
}

const CODE_TO_KIND: Partial<Record<Code, ErrorKind>> = {
  [Code.InvalidArgument]: "invalid_input",
  [Code.NotFound]: "not_found",
  [Code.Aborted]: "conflict",
  [Code.AlreadyExists]: "conflict",
  [Code.ResourceExhausted]: "quota_exceeded",
  [Code.FailedPrecondition]: "conflict",
  [Code.PermissionDenied]: "forbidden",
  [Code.Unauthenticated]: "unauthorized",
  [Code.Unavailable]: "unavailable",
  [Code.DeadlineExceeded]: "unavailable",
  [Code.Unimplemented]: "unimplemented",
  [Code.OutOfRange]: "gone",
};

/** ConnectError (from another service) → StratusError with the kind it was thrown with. */
export function fromConnectError(err: unknown): StratusError {
  if (err instanceof StratusError) return err;
  const ce = ConnectError.from(err);
  const sent = ce.metadata.get(KIND_HEADER) as ErrorKind | null;
  const kind = sent && sent in KINDS ? sent : (CODE_TO_KIND[ce.code] ?? "internal");
  return new StratusError(kind, ce.rawMessage, { cause: err });
}

const FAULT_NAMES: Record<number, string> = {
  400: "badRequest",
  401: "unauthorized",
  403: "forbidden",
  404: "itemNotFound",
  405: "badMethod",
  409: "conflictingRequest",
  413: "overLimit",
  415: "badMediaType",
  429: "overLimit",
  501: "notImplemented",
  503: "serviceUnavailable",
};

/** Nova's fault body: {"itemNotFound": {"code": 404, "message": "…"}}. */
export function novaFault(
  status: number,
  message: string,
): Record<string, { code: number; message: string }> {
  return { [FAULT_NAMES[status] ?? "computeFault"]: { code: status, message } };
}
