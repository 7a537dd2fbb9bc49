// Helpers for the Networking API's tests: a mesh with the services the API needs, and a caller.
import { type Mesh, startMesh } from "@stratus/runtime/testing";
import { type RestAnswer, rest } from "../api/helpers.js";

export type { RestAnswer };

/** The placement owner, the network-adapter and the api (the Networking API's listener). */
export async function startNetworkingMesh(): Promise<Mesh> {
  return startMesh({ services: ["scheduler", "network-adapter", "api"] });
}

/** A Networking API call as `token` (default: an admin). */
export function callAs(mesh: Mesh, token: string | null) {
  return (method: string, path: string, body?: unknown): Promise<RestAnswer> =>
    rest(mesh.networkApiUrl, method, path, { token, ...(body === undefined ? {} : { body }) });
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
