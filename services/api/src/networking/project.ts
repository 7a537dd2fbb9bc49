// The project a create names: project_id or tenant_id (the same thing; both given must agree).
import { badRequest } from "./faults.js";

/** The project asked for in a create body ("" when none: the owner takes the caller's). */
export function projectOf(body: Record<string, unknown>): string {
  const project = body.project_id as string | undefined;
  const tenant = body.tenant_id as string | undefined;
  if (project !== undefined && tenant !== undefined && project !== tenant) {
    throw badRequest("'project_id' and 'tenant_id' do not match");
  }
  return project ?? tenant ?? "";
}
