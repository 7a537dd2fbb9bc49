// Resource ids: uuids. Anything else simply does not exist (and must not reach SQL as a cast error).
import { notFound } from "@stratus/runtime";

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export function isUuid(id: string): boolean {
  return UUID.test(id);
}

/** The id in lower case, or not_found "<what> <id> could not be found" when it is no uuid. */
export function checkId(id: string, what: string): string {
  if (!UUID.test(id)) throw notFound(`${what} ${id || "(empty id)"} could not be found`);
  return id.toLowerCase();
}
