// For a test that builds a connect-es client of its own (a transport serviceClient does not
// make): the caller headers serviceClient would send to that service (the harness's `tools`
// credential, and the acting-for user of the current context).
import type { Interceptor } from "@connectrpc/connect";
import { callerCredentialFor, writeCallerHeaders } from "../auth/caller-credential.js";

export function credentialInterceptor(): Interceptor {
  return (next) => (req) => {
    writeCallerHeaders(req.header, callerCredentialFor(req.url));
    return next(req);
  };
}
