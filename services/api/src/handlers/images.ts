// Images: the Nova image proxy (GET /images, /images/detail, /images/{id}; 404 from 2.36) and, on
// the same paths, the fields of the Image API that python-openstackclient reads when it resolves
// `--image` against the endpoint (GET {endpoint}/images/{ref}, then GET {endpoint}/images?name=).
// One body serves both readers: Nova's under "image"/"images", Glance's flat.

import { StratusError } from "@stratus/runtime";
import type { ApiDeps } from "../deps.js";
import type { RestRequest, Router } from "../http/router.js";
import type { Image } from "../images.js";
import { isoTime, links, paging } from "./common.js";

function glanceView(i: Image) {
  return {
    id: i.id,
    name: i.name,
    status: "active",
    visibility: "public",
    protected: false,
    os_hidden: false,
    disk_format: i.disk_format,
    container_format: i.container_format,
    min_disk: i.min_disk,
    min_ram: i.min_ram,
    size: i.size,
    virtual_size: null,
    checksum: null,
    owner: null,
    tags: [],
    created_at: isoTime(new Date(i.created_at)),
    updated_at: isoTime(new Date(i.created_at)),
    self: `/v2/images/${i.id}`,
    file: `/v2/images/${i.id}/file`,
    schema: "/v2/schemas/image",
    ...i.metadata,
  };
}

function novaDetail(req: RestRequest, i: Image) {
  return {
    id: i.id,
    name: i.name,
    minRam: i.min_ram,
    minDisk: i.min_disk,
    progress: 100,
    status: "ACTIVE",
    created: isoTime(new Date(i.created_at)),
    updated: isoTime(new Date(i.created_at)),
    metadata: i.metadata,
    "OS-EXT-IMG-SIZE:size": i.size,
    links: links(req, "images", i.id),
  };
}

function page(req: RestRequest, images: Image[]): Image[] {
  const { limit, marker } = paging(req);
  let start = 0;
  if (marker) {
    start = images.findIndex((i) => i.id === marker) + 1;
    if (start === 0) throw new StratusError("invalid_input", `marker [${marker}] not found`);
  }
  return images.slice(start, start + limit);
}

export function imageRoutes(router: Router, deps: ApiDeps): void {
  const gate = { until: "proxyApisRemoved" } as const;
  router.add(
    "GET",
    "/images",
    (req) => {
      const list = page(req, deps.images.list({ name: req.query.get("name") }));
      return {
        status: 200,
        body: {
          images: list.map((i) => ({ ...glanceView(i), links: links(req, "images", i.id) })),
          first: "/v2/images",
          schema: "/v2/schemas/images",
        },
      };
    },
    gate,
  );
  router.add(
    "GET",
    "/images/detail",
    (req) => ({
      status: 200,
      body: {
        images: page(req, deps.images.list({ name: req.query.get("name") })).map((i) => novaDetail(req, i)),
      },
    }),
    gate,
  );
  router.add(
    "GET",
    "/images/:id",
    (req) => {
      const image = deps.images.get(req.params.id!);
      if (!image) throw new StratusError("not_found", "Image not found.");
      return { status: 200, body: { ...glanceView(image), image: novaDetail(req, image) } };
    },
    gate,
  );
}
