// Helpers for the Networking API's tests: a mesh with the services the API needs, and a caller.
import { type Mesh, startMesh } from "@stratus/runtime/testing";
import { type RestAnswer, rest } from "../api/helpers.js";

export type { RestAnswer };

/**
 * The placement owner, the network-adapter and the api (the Networking API's listener), the api in
 * the insecure development mode: these tests are about the Networking API's resources, and a
 * caller `alice:p1` is then user alice in project p1 as written. The authenticator is the compute
 * edge's (http/authenticate.ts), whose real-token paths test/api/edge-auth.test.ts covers; one
 * test here calls with a real token.
 */
export async function startNetworkingMesh(): Promise<Mesh> {
  return startMesh({
    services: ["scheduler", "network-adapter", "api"],
    serviceEnv: { api: { STRATUS_INSECURE_DEV_TOKENS: "1" } },
  });
}

/** A Networking API call as `token` (`user:project`, sent as written; user admin is an admin). */
export function callAs(mesh: Mesh, token: string | null) {
  return (method: string, path: string, body?: unknown): Promise<RestAnswer> =>
    rest(mesh.networkApiUrl, method, path, {
      token,
      tokenAsIs: true,
      ...(body === undefined ? {} : { body }),
    });
}

/** Expects a NeutronError body of `type` with `status`; returns its message. */
export function neutronError(r: RestAnswer, status: number, type: string): string {
  if (r.status !== status || r.body?.NeutronError?.type !== type) {
    throw new Error(`expected ${status} ${type}, got ${r.status} ${JSON.stringify(r.body)}`);
  }
  if (r.body.NeutronError.detail !== "" || typeof r.body.NeutronError.message !== "string") {
    throw new Error(`not a NeutronError body: ${JSON.stringify(r.body)}`);
  }
  return r.body.NeutronError.message;
}
