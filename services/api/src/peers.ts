// The api's peers as its handlers call them. A peer that cannot be reached (or answers that it is
// unavailable, or lets the deadline pass) fails as a ServiceUnavailable naming the kind of service
// a client knows, so that the client's 503 says "The compute service is unavailable" and nothing
// of the address or the transport's error, which stays the cause (logged with the request id).
import { isStratusError } from "@stratus/runtime";
import { ServiceUnavailable } from "@stratus/runtime/http";

/** `client` (a serviceClient), its unavailability named `service` ("compute", "network", …). */
export function peerClient<T extends object>(service: string, client: T): T {
  return new Proxy(client, {
    get(target, prop, receiver) {
      const value: unknown = Reflect.get(target, prop, receiver);
      if (typeof value !== "function") return value;
      return (...args: unknown[]) => {
        const result: unknown = (value as (...a: unknown[]) => unknown).apply(target, args);
        return result instanceof Promise
          ? result.catch((err: unknown) => {
              throw isStratusError(err, "unavailable") && !(err instanceof ServiceUnavailable)
                ? new ServiceUnavailable(service, { cause: err })
                : err;
            })
          : result;
      };
    },
  });
}

/**
 * Whether a failed call may have reached the peer and been applied: false only when the
 * connection was refused, so the request was never sent.
 */
export function mayHaveBeenApplied(err: unknown): boolean {
  for (let e: unknown = err, depth = 0; e && depth < 8; e = (e as { cause?: unknown }).cause, depth++) {
    const { code, message } = e as { code?: unknown; message?: unknown };
    if (code === "ECONNREFUSED" || (typeof message === "string" && message.includes("ECONNREFUSED"))) {
      return false;
    }
  }
  return true;
}
