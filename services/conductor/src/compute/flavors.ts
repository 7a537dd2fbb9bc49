// Flavors: Nova's five seeded sizes plus what an admin adds.
import { conflict, invalidInput, notFound, type Queryable } from "@stratus/runtime";
import { cols } from "../columns.js";

export interface FlavorRecord {
  id: string;
  name: string;
  vcpus: number;
  ramMb: number;
  diskGb: number;
  ephemeralGb: number;
  swapMb: number;
  rxtxFactor: number;
  isPublic: boolean;
  extraSpecs: Record<string, string>;
}

interface FlavorRow extends Record<string, unknown> {
  id: string;
  name: string;
  vcpus: number;
  ram_mb: number;
  disk_gb: number;
  ephemeral_gb: number;
  swap_mb: number;
  rxtx_factor: number;
  is_public: boolean;
  extra_specs: Record<string, string>;
}

function fromRow(r: FlavorRow): FlavorRecord {
  return {
    id: r.id,
    name: r.name,
    vcpus: r.vcpus,
    ramMb: r.ram_mb,
    diskGb: r.disk_gb,
    ephemeralGb: r.ephemeral_gb,
    swapMb: r.swap_mb,
    rxtxFactor: Number(r.rxtx_factor),
    isPublic: r.is_public,
    extraSpecs: r.extra_specs ?? {},
  };
}

const NAME = /^[\w .-]{1,255}$/;

export class Flavors {
  /**
   * Flavors found by their id. A flavor is never updated nor deleted (only created), so what an id
   * names never changes; lookups by name still go to the database (a later flavor may take the
   * name as its id).
   */
  private readonly byId = new Map<string, FlavorRecord>();

  constructor(private readonly db: Queryable) {}

  async list(includePrivate: boolean): Promise<FlavorRecord[]> {
    const rows = await this.db.query<FlavorRow>(
      `SELECT ${cols("flavors")} FROM flavors WHERE is_public OR $1 ORDER BY ram_mb, vcpus, disk_gb, id`,
      [includePrivate],
    );
    return rows.map(fromRow);
  }

  /** By id, else by name. */
  async get(idOrName: string): Promise<FlavorRecord> {
    if (!idOrName) throw invalidInput("a flavor id is required");
    const cached = this.byId.get(idOrName);
    if (cached) return cached;
    const rows = await this.db.query<FlavorRow>(
      `SELECT ${cols("flavors")} FROM flavors WHERE id = $1 OR name = $1 ORDER BY (id = $1) DESC LIMIT 1`,
      [idOrName],
    );
    if (!rows[0]) throw notFound(`Flavor ${idOrName} could not be found.`);
    const flavor = fromRow(rows[0]);
    if (flavor.id === idOrName && this.byId.size < 10_000) this.byId.set(flavor.id, flavor);
    return flavor;
  }

  async create(f: Partial<FlavorRecord> & { name: string }, newId: () => string): Promise<FlavorRecord> {
    if (!NAME.test(f.name))
      throw invalidInput("flavor name must be 1-255 letters, digits, spaces, '.', '-' or '_'");
    const ints: [string, number | undefined, number][] = [
      ["vcpus", f.vcpus, 1],
      ["ram", f.ramMb, 1],
      ["disk", f.diskGb ?? 0, 0],
      ["ephemeral", f.ephemeralGb ?? 0, 0],
      ["swap", f.swapMb ?? 0, 0],
    ];
    for (const [what, v, min] of ints) {
      if (v === undefined || !Number.isInteger(v) || v < min || v > 2 ** 31 - 1) {
        throw invalidInput(`flavor ${what} must be an integer >= ${min}`);
      }
    }
    const rxtx = f.rxtxFactor || 1;
    if (!(rxtx > 0)) throw invalidInput("flavor rxtx_factor must be positive");
    const id = f.id || newId();
    if (id.length > 255) throw invalidInput("flavor id is too long");
    const rows = await this.db.query<FlavorRow>(
      `INSERT INTO flavors (id, name, vcpus, ram_mb, disk_gb, ephemeral_gb, swap_mb, rxtx_factor, is_public, extra_specs)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
       ON CONFLICT DO NOTHING RETURNING ${cols("flavors")}`,
      [
        id,
        f.name,
        f.vcpus,
        f.ramMb,
        f.diskGb ?? 0,
        f.ephemeralGb ?? 0,
        f.swapMb ?? 0,
        rxtx,
        f.isPublic ?? true,
        JSON.stringify(f.extraSpecs ?? {}),
      ],
    );
    if (!rows[0]) throw conflict(`Flavor with id ${id} or name ${f.name} already exists.`);
    return fromRow(rows[0]);
  }
}
