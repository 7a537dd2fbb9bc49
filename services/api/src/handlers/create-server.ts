// POST /servers. Everything the request says is read and checked first (schema, entry rules,
// image, flavor, networks, port quota: reads only), then the conductor is asked once to create
// the servers, under a client token: the client's Idempotency-Key, or one made here. A call that
// fails in a way that may have been applied (the connection reset, the peer unavailable, the
// deadline passed) is asked again under the same token until the conductor answers or the retry
// window closes, so the client gets 202 with its server when it was saved and a 503 only when the
// conductor could not say (never a second server for one request).
import { randomBytes, randomUUID } from "node:crypto";
import type { MessageInitShape, MessageShape } from "@bufbuild/protobuf";
import type {
  CreateServersRequestSchema,
  CreateServersResponseSchema,
  FlavorSchema,
} from "@stratus/contracts/compute/v1";
import { isStratusError, StratusError } from "@stratus/runtime";
import type { ApiDeps } from "../deps.js";
import type { Caller, Handler, RestRequest } from "../http/router.js";
import { type RequestedNetworks, serverCreateSchema } from "../schemas/servers.js";
import { invalid, links, validate } from "./common.js";
import { checkEntries, checkPortQuota, resolveNetworks } from "./resolve-networks.js";

type Flavor = MessageShape<typeof FlavorSchema>;
type CreateRequest = MessageInitShape<typeof CreateServersRequestSchema>;
type CreateAnswer = MessageShape<typeof CreateServersResponseSchema>;

/** The header a client names its create with; a repeated create with the same key answers the first. */
export const IDEMPOTENCY_KEY_HEADER = "idempotency-key";

/** How long the api keeps asking a conductor whose answer to a create was lost (API_CREATE_RETRY_MS). */
export const DEFAULT_CREATE_RETRY_MS = 30_000;

// adminPass: 9 random bytes per create, cut from 4 KiB drawn at once (a draw from the system
// generator per create cost more than the rest of answering it; docs/performance.md, "api").
let randomPool = Buffer.alloc(0);
let randomAt = 0;
function newAdminPass(): string {
  if (randomAt + 9 > randomPool.length) {
    randomPool = randomBytes(4096);
    randomAt = 0;
  }
  randomAt += 9;
  return randomPool.subarray(randomAt - 9, randomAt).toString("base64url");
}

function userDataOk(s: string): boolean {
  return /^[A-Za-z0-9+/\r\n]*={0,2}$/.test(s) && s.replace(/[\r\n]/g, "").length % 4 === 0;
}

/**
 * The client token of this create: the caller's Idempotency-Key (1-255 visible ASCII characters,
 * optionally in double quotes as a structured-field string), or a new one; scoped to the user, so
 * that no one else's key can name this user's servers.
 */
function clientToken(req: RestRequest): string {
  const sent = req.headers[IDEMPOTENCY_KEY_HEADER];
  let key = Array.isArray(sent) ? sent[0] : sent;
  if (key === undefined) key = randomUUID();
  else {
    if (key.length >= 2 && key.startsWith('"') && key.endsWith('"')) key = key.slice(1, -1);
    if (!/^[\x21-\x7e]{1,255}$/.test(key)) {
      throw invalid("Invalid Idempotency-Key header: it must be 1 to 255 visible ASCII characters.");
    }
  }
  return JSON.stringify([req.caller.userId, key]);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Whether a failed call may have reached the conductor and been applied: false only when the
 * connection was refused, so the request was never sent.
 */
function mayHaveBeenApplied(err: unknown): boolean {
  for (let e: unknown = err, depth = 0; e && depth < 8; e = (e as { cause?: unknown }).cause, depth++) {
    const { code, message } = e as { code?: unknown; message?: unknown };
    if (code === "ECONNREFUSED" || (typeof message === "string" && message.includes("ECONNREFUSED"))) {
      return false;
    }
  }
  return true;
}

/**
 * CreateServers under the request's client token, asked again while its outcome is unknown: until
 * the conductor answers, or `windowMs` has passed since the first call. A refusal to connect at
 * the first call is an answer (nothing was sent); after a call that may have been applied, only
 * the conductor's answer is.
 */
async function createUnderToken(deps: ApiDeps, request: CreateRequest): Promise<CreateAnswer> {
  const windowMs = deps.createRetryMs ?? DEFAULT_CREATE_RETRY_MS;
  const started = Date.now();
  let maybeApplied = false;
  for (let attempt = 0; ; attempt++) {
    try {
      return await deps.conductor.createServers(request);
    } catch (err) {
      if (!isStratusError(err, "unavailable")) throw err;
      maybeApplied ||= mayHaveBeenApplied(err);
      if (!maybeApplied || Date.now() - started >= windowMs) throw err;
      deps.logger.warn({ err, attempt }, "create: the conductor's answer was lost, asking again");
      await sleep(Math.min(100 * 2 ** attempt, 1000));
    }
  }
}

export function createServerRoute(deps: ApiDeps): Handler {
  // Flavors the conductor found by their id. A flavor is never updated nor deleted (the conductor
  // only creates them), so what an id names never changes; names are always looked up.
  const flavorsById = new Map<string, Flavor>();
  const flavorFor = async (ref: string): Promise<Flavor | undefined> => {
    const cached = flavorsById.get(ref);
    if (cached) return cached;
    const { flavor } = await deps.conductor.getFlavor({ id: ref });
    if (flavor && flavor.id === ref && flavorsById.size < 10_000) flavorsById.set(ref, flavor);
    return flavor;
  };
  const flavorIdOf = async (ref: string, caller: Caller): Promise<string> => {
    try {
      const flavor = await flavorFor(ref);
      if (!flavor || (!flavor.isPublic && !caller.isAdmin)) throw new StratusError("not_found", "");
      return flavor.id;
    } catch (err) {
      if (isStratusError(err, "not_found") || isStratusError(err, "invalid_input")) {
        throw invalid(`Flavor ${ref} could not be found.`);
      }
      throw err;
    }
  };

  return async (req) => {
    if (req.body === undefined) throw invalid("The request body is missing.");
    const body = validate(serverCreateSchema(req.version), req.body);
    const s = body.server;
    const requested = s.networks as RequestedNetworks;
    const caller = req.caller;
    const token = clientToken(req);
    const minCount = s.min_count ?? 1;
    let maxCount = s.max_count ?? minCount;
    if (minCount > maxCount) throw invalid("min_count must be <= max_count");
    if (Array.isArray(requested)) checkEntries(requested, maxCount);
    if (s.user_data !== undefined && !userDataOk(s.user_data))
      throw invalid("User data needs to be valid base 64.");
    if (s.key_name !== undefined) throw invalid("Invalid key_name provided.");
    if (s.metadata && Object.keys(s.metadata).length > 128) {
      throw new StratusError("quota_exceeded", "Quota exceeded for metadata_items: Requested more than 128");
    }

    // Flavor and image before any network lookup (Nova's order).
    const image = s.imageRef ? deps.images.resolveRef(s.imageRef) : undefined;
    if (!image) throw invalid("Can not find requested image");
    const flavorId = await flavorIdOf(s.flavorRef.split("/").pop() ?? "", caller);

    const resolved = await resolveNetworks(deps, caller, requested);
    maxCount = await checkPortQuota(deps, caller, resolved.newPortsPerServer, minCount, maxCount);

    const rawHints = body["os:scheduler_hints"] ?? body["OS-SCH-HNT:scheduler_hints"] ?? {};
    const schedulerHints = Object.fromEntries(
      Object.entries(rawHints).map(([k, v]) => [k, Array.isArray(v) ? v.join(",") : v]),
    );
    const created = await createUnderToken(deps, {
      name: s.name,
      flavorId,
      imageRef: image.id,
      minCount,
      maxCount,
      networkMode: resolved.mode,
      networks: resolved.networks,
      metadata: s.metadata ?? {},
      userData: s.user_data ?? "",
      clientToken: token,
      projectId: caller.projectId,
      userId: caller.userId,
      availabilityZone: s.availability_zone ?? "",
      schedulerHints,
      description: (s as { description?: string | null }).description ?? "",
    });
    deps.listCache?.changed([caller.projectId]);
    if (s.return_reservation_id) return { status: 202, body: { reservation_id: created.reservationId } };
    const first = created.servers[0];
    if (!first) throw new StratusError("internal", "the conductor accepted no server");
    const serverLinks = links(req, "servers", first.id);
    return {
      status: 202,
      headers: { location: serverLinks[0]!.href },
      body: {
        server: {
          id: first.id,
          links: serverLinks,
          "OS-DCF:diskConfig": s["OS-DCF:diskConfig"] ?? "MANUAL",
          security_groups: s.security_groups ?? [{ name: "default" }],
          adminPass: s.adminPass ?? newAdminPass(),
        },
      },
    };
  };
}
