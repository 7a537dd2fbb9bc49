// Flavors: list, detail, show (the conductor owns them).
import type { MessageShape } from "@bufbuild/protobuf";
import type { FlavorSchema } from "@stratus/contracts/compute/v1";
import { isStratusError, StratusError } from "@stratus/runtime";
import type { ApiDeps } from "../deps.js";
import type { RestRequest, Router } from "../http/router.js";
import { invalid, links, nextLink, paging } from "./common.js";

type Flavor = MessageShape<typeof FlavorSchema>;

export function flavorSummary(req: RestRequest, f: Flavor) {
  return { id: f.id, name: f.name, links: links(req, "flavors", f.id) };
}

export function flavorDetail(req: RestRequest, f: Flavor) {
  return {
    ...flavorSummary(req, f),
    ram: f.ramMb,
    vcpus: f.vcpus,
    disk: f.diskGb,
    "OS-FLV-EXT-DATA:ephemeral": f.ephemeralGb,
    // Before 2.75 a swap of 0 is "".
    swap: f.swapMb || "",
    "os-flavor-access:is_public": f.isPublic,
    "OS-FLV-DISABLED:disabled": false,
    rxtx_factor: f.rxtxFactor || 1.0,
  };
}

function intParam(req: RestRequest, name: string): number | undefined {
  const v = req.query.get(name);
  if (v === null) return undefined;
  if (!/^\d{1,9}$/.test(v)) throw invalid(`Invalid ${name} filter [${v}]`);
  return Number(v);
}

async function listFlavors(req: RestRequest, deps: ApiDeps): Promise<Flavor[]> {
  // is_public: non-admins only ever see public flavors; admins may ask for all ("none").
  const isPublic = (req.query.get("is_public") ?? "true").toLowerCase();
  let includePrivate = false;
  let onlyPrivate = false;
  if (req.caller.isAdmin) {
    if (isPublic === "none") includePrivate = true;
    else if (["false", "f", "0", "no", "off"].includes(isPublic)) {
      includePrivate = true;
      onlyPrivate = true;
    } else if (!["true", "t", "1", "yes", "on"].includes(isPublic)) {
      throw invalid(`Invalid is_public filter [${req.query.get("is_public")}]`);
    }
  }
  const minRam = intParam(req, "minRam");
  const minDisk = intParam(req, "minDisk");
  const { limit, marker } = paging(req);
  let flavors = (await deps.conductor.listFlavors({ includePrivate })).flavors
    .filter((f) => !onlyPrivate || !f.isPublic)
    .filter((f) => minRam === undefined || f.ramMb >= minRam)
    .filter((f) => minDisk === undefined || f.diskGb >= minDisk)
    .sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  if (marker !== undefined) {
    const i = flavors.findIndex((f) => f.id === marker);
    if (i < 0) throw invalid(`marker [${marker}] not found`);
    flavors = flavors.slice(i + 1);
  }
  return flavors.slice(0, limit);
}

export function flavorRoutes(router: Router, deps: ApiDeps): void {
  router.add("GET", "/flavors", async (req) => {
    const { limit } = paging(req);
    const flavors = await listFlavors(req, deps);
    return {
      status: 200,
      body: {
        flavors: flavors.map((f) => flavorSummary(req, f)),
        ...(req.query.has("limit") && flavors.length === limit && limit > 0
          ? { flavors_links: nextLink(req, "flavors", flavors[flavors.length - 1]!.id, limit) }
          : {}),
      },
    };
  });
  router.add("GET", "/flavors/detail", async (req) => {
    const { limit } = paging(req);
    const flavors = await listFlavors(req, deps);
    return {
      status: 200,
      body: {
        flavors: flavors.map((f) => flavorDetail(req, f)),
        ...(req.query.has("limit") && flavors.length === limit && limit > 0
          ? { flavors_links: nextLink(req, "flavors/detail", flavors[flavors.length - 1]!.id, limit) }
          : {}),
      },
    };
  });
  router.add("GET", "/flavors/:id", async (req) => ({
    status: 200,
    body: { flavor: flavorDetail(req, await requireFlavor(req, deps)) },
  }));
  // Stratus flavors carry no extra specs yet; the CLI reads them for `flavor list` / `show`.
  router.add("GET", "/flavors/:id/os-extra_specs", async (req) => {
    await requireFlavor(req, deps);
    return { status: 200, body: { extra_specs: {} } };
  });
  router.add("GET", "/flavors/:id/os-extra_specs/:key", async (req) => {
    await requireFlavor(req, deps);
    throw new StratusError(
      "not_found",
      `Flavor ${req.params.id} has no extra specs with key ${req.params.key}.`,
    );
  });
}

async function requireFlavor(req: RestRequest, deps: ApiDeps) {
  const id = req.params.id!;
  try {
    const { flavor } = await deps.conductor.getFlavor({ id });
    if (!flavor || (!flavor.isPublic && !req.caller.isAdmin)) throw new StratusError("not_found", "");
    return flavor;
  } catch (err) {
    if (isStratusError(err, "not_found") || isStratusError(err, "invalid_input")) {
      throw new StratusError("not_found", `Flavor ${id} could not be found.`);
    }
    throw err;
  }
}
