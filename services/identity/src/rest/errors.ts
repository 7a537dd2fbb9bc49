// Keystone's error bodies: {"error": {"code": 404, "message": "…", "title": "Not Found"}}. Every
// 401 says the same thing whatever the reason (Keystone's security errors without insecure_debug:
// an unknown user, a wrong password and a locked account look alike), and a 500 says nothing of
// what failed; the reasons go to the log with the request id.
import { isStratusError, type Logger } from "@stratus/runtime";
import { restFault } from "@stratus/runtime/http";
import { isDataException, isUniqueViolation } from "../directory/sql-errors.js";

const TITLES: Record<number, string> = {
  400: "Bad Request",
  401: "Unauthorized",
  403: "Forbidden",
  404: "Not Found",
  405: "Method Not Allowed",
  409: "Conflict",
  413: "Request Entity Too Large",
  415: "Unsupported Media Type",
  500: "Internal Server Error",
  501: "Not Implemented",
  503: "Service Unavailable",
};

export const UNAUTHORIZED_MESSAGE = "The request you have made requires authentication.";
const UNEXPECTED_MESSAGE = "An unexpected error prevented the server from fulfilling your request.";

export function keystoneError(status: number, message: string) {
  return { error: { code: status, message, title: TITLES[status] ?? "Error" } };
}

export interface Fault {
  status: number;
  body: ReturnType<typeof keystoneError>;
  headers: Record<string, string>;
}

export function faultOf(err: unknown, logger: Logger, requestId: string): Fault {
  if (isStratusError(err, "unauthorized")) {
    logger.info({ request_id: requestId, reason: err.message }, "authentication refused");
    return { status: 401, body: keystoneError(401, UNAUTHORIZED_MESSAGE), headers: {} };
  }
  if (!isStratusError(err) && isDataException(err)) {
    return {
      status: 400,
      body: keystoneError(400, "Invalid input: a value cannot be stored as given."),
      headers: {},
    };
  }
  if (!isStratusError(err) && isUniqueViolation(err)) {
    return {
      status: 409,
      body: keystoneError(409, "Conflict occurred attempting to store the resource."),
      headers: {},
    };
  }
  const fault = restFault(err, { logger, requestId, service: "identity", unexpected: UNEXPECTED_MESSAGE });
  return { status: fault.status, body: keystoneError(fault.status, fault.message), headers: fault.headers };
}
