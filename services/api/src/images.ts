// A small image catalogue: a built-in cirros-like image plus optional IMAGES (JSON) from the
// environment. Stratus has no image service; this is what `openstack server create --image` and
// the Nova image proxy read.
import { z } from "zod";

/** The built-in image's fixed id (the demo and the tests boot from it). */
export const CIRROS_IMAGE_ID = "a9e6c1b4-5f0d-4c36-8a57-2f4f6b1c0c01";

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export const ImageSchema = z.strictObject({
  id: z.string().regex(UUID, "must be a UUID"),
  name: z.string().min(1).max(255),
  min_disk: z.number().int().min(0).default(0),
  min_ram: z.number().int().min(0).default(0),
  size: z.number().int().min(0).default(0),
  disk_format: z.string().default("qcow2"),
  container_format: z.string().default("bare"),
  created_at: z.iso.datetime().default("2026-01-01T00:00:00Z"),
  metadata: z.record(z.string(), z.string()).default({}),
});

export type Image = z.infer<typeof ImageSchema>;

export const BUILT_IN_IMAGES: Image[] = [
  {
    id: CIRROS_IMAGE_ID,
    name: "cirros-0.6.2-x86_64-disk",
    min_disk: 0,
    min_ram: 0,
    size: 21430272,
    disk_format: "qcow2",
    container_format: "bare",
    created_at: "2026-01-01T00:00:00Z",
    metadata: { os_distro: "cirros", hw_architecture: "x86_64" },
  },
];

/** Parses the IMAGES variable: a JSON array of images (ids unique, may not shadow the built-in). */
export function parseImages(json: string | undefined): Image[] {
  if (!json) return [...BUILT_IN_IMAGES];
  let raw: unknown;
  try {
    raw = JSON.parse(json);
  } catch {
    throw new Error("IMAGES must be a JSON array of images");
  }
  const extra = z.array(ImageSchema).parse(raw);
  const all = [...BUILT_IN_IMAGES, ...extra];
  const ids = new Set(all.map((i) => i.id.toLowerCase()));
  if (ids.size !== all.length) throw new Error("IMAGES: image ids must be unique");
  return all;
}

export class ImageCatalogue {
  private readonly byId: Map<string, Image>;
  constructor(readonly images: Image[]) {
    this.byId = new Map(images.map((i) => [i.id.toLowerCase(), i]));
  }

  get(id: string): Image | undefined {
    return this.byId.get(id.toLowerCase());
  }

  /** An imageRef: an id or a URL ending in one. */
  resolveRef(ref: string): Image | undefined {
    const last = ref.split("/").pop() ?? "";
    return this.get(last);
  }

  list(filter: { name?: string | null } = {}): Image[] {
    return this.images.filter((i) => !filter.name || i.name === filter.name);
  }
}
