// The service catalog: regions, services and their endpoints (public, internal, admin URLs per
// region). Tokens carry the enabled part of it.
import { conflict, invalidInput, notFound, type Queryable, StratusError } from "@stratus/runtime";
import { cols } from "../columns.js";
import { newId } from "../identifiers.js";
import { isForeignKeyViolation, isUniqueViolation } from "./sql-errors.js";

export type Interface = "public" | "internal" | "admin";

export interface RegionRecord {
  id: string;
  description: string;
  parentRegionId: string | undefined;
}

export interface ServiceRecord {
  id: string;
  type: string;
  name: string;
  description: string;
  enabled: boolean;
  extra: Record<string, unknown>;
}

export interface EndpointRecord {
  id: string;
  serviceId: string;
  interface: Interface;
  regionId: string | undefined;
  url: string;
  enabled: boolean;
}

export interface CatalogEntry {
  service: ServiceRecord;
  endpoints: EndpointRecord[];
}

const region = (r: Record<string, unknown>): RegionRecord => ({
  id: r.id as string,
  description: r.description as string,
  parentRegionId: (r.parent_region_id as string | null) ?? undefined,
});

const service = (r: Record<string, unknown>): ServiceRecord => ({
  id: r.id as string,
  type: r.type as string,
  name: r.name as string,
  description: r.description as string,
  enabled: r.enabled as boolean,
  extra: (r.extra as Record<string, unknown>) ?? {},
});

const endpoint = (r: Record<string, unknown>): EndpointRecord => ({
  id: r.id as string,
  serviceId: r.service_id as string,
  interface: r.interface as Interface,
  regionId: (r.region_id as string | null) ?? undefined,
  url: r.url as string,
  enabled: r.enabled as boolean,
});

type Changes<T> = { [K in keyof T]?: T[K] | undefined };

export class Catalog {
  constructor(private readonly db: Queryable) {}

  // Regions

  async listRegions(filter: { parentRegionId?: string | undefined } = {}): Promise<RegionRecord[]> {
    const rows = await this.db.query(
      `SELECT ${cols("regions")} FROM regions WHERE ($1::text IS NULL OR parent_region_id = $1) ORDER BY id`,
      [filter.parentRegionId ?? null],
    );
    return rows.map(region);
  }

  async getRegion(id: string, q: Queryable = this.db): Promise<RegionRecord> {
    const [row] = await q.query(`SELECT ${cols("regions")} FROM regions WHERE id = $1`, [id]);
    if (!row) throw notFound(`Could not find region: ${id}.`);
    return region(row);
  }

  async createRegion(
    q: Queryable,
    r: Omit<RegionRecord, "id"> & { id?: string | undefined },
  ): Promise<RegionRecord> {
    try {
      const [row] = await q.query(
        `INSERT INTO regions (id, description, parent_region_id) VALUES ($1, $2, $3) RETURNING ${cols("regions")}`,
        [r.id ?? newId(), r.description, r.parentRegionId ?? null],
      );
      return region(row!);
    } catch (err) {
      if (isUniqueViolation(err))
        throw conflict(`Conflict occurred attempting to store region - Duplicate ID, ${r.id}.`);
      if (isForeignKeyViolation(err)) throw notFound(`Could not find region: ${r.parentRegionId}.`);
      throw err;
    }
  }

  /** The region, created when missing (bootstrap). */
  async ensureRegion(q: Queryable, id: string): Promise<void> {
    await q.query("INSERT INTO regions (id) VALUES ($1) ON CONFLICT DO NOTHING", [id]);
  }

  async updateRegion(q: Queryable, id: string, c: Changes<Omit<RegionRecord, "id">>): Promise<RegionRecord> {
    await this.getRegion(id, q);
    if (c.parentRegionId === id) throw invalidInput("A region cannot be its own parent.");
    try {
      const [row] = await q.query(
        `UPDATE regions SET description = coalesce($2, description),
           parent_region_id = CASE WHEN $3 THEN $4 ELSE parent_region_id END WHERE id = $1 RETURNING ${cols("regions")}`,
        [id, c.description ?? null, c.parentRegionId !== undefined, c.parentRegionId ?? null],
      );
      return region(row!);
    } catch (err) {
      if (isForeignKeyViolation(err)) throw notFound(`Could not find region: ${c.parentRegionId}.`);
      throw err;
    }
  }

  async deleteRegion(q: Queryable, id: string): Promise<void> {
    await this.getRegion(id, q);
    try {
      await q.query("DELETE FROM regions WHERE id = $1", [id]);
    } catch (err) {
      if (isForeignKeyViolation(err)) {
        throw new StratusError(
          "forbidden",
          `Unable to delete region ${id} because it or its child regions have associated endpoints.`,
        );
      }
      throw err;
    }
  }

  // Services

  async listServices(
    filter: { type?: string | undefined; name?: string | undefined } = {},
    q: Queryable = this.db,
  ): Promise<ServiceRecord[]> {
    const rows = await q.query(
      `SELECT ${cols("services")} FROM services WHERE ($1::text IS NULL OR type = $1) AND ($2::text IS NULL OR name = $2) ORDER BY type, name, id`,
      [filter.type ?? null, filter.name ?? null],
    );
    return rows.map(service);
  }

  async getService(id: string, q: Queryable = this.db): Promise<ServiceRecord> {
    const [row] = await q.query(`SELECT ${cols("services")} FROM services WHERE id = $1`, [id]);
    if (!row) throw notFound(`Could not find service: ${id}.`);
    return service(row);
  }

  async createService(q: Queryable, s: Omit<ServiceRecord, "id">): Promise<ServiceRecord> {
    const [row] = await q.query(
      `INSERT INTO services (id, type, name, description, enabled, extra) VALUES ($1, $2, $3, $4, $5, $6) RETURNING ${cols("services")}`,
      [newId(), s.type, s.name, s.description, s.enabled, JSON.stringify(s.extra)],
    );
    return service(row!);
  }

  async updateService(
    q: Queryable,
    id: string,
    c: Changes<Omit<ServiceRecord, "id">>,
  ): Promise<ServiceRecord> {
    await this.getService(id, q);
    const [row] = await q.query(
      `UPDATE services SET type = coalesce($2, type), name = coalesce($3, name), description = coalesce($4, description),
         enabled = coalesce($5, enabled), extra = extra || $6::jsonb WHERE id = $1 RETURNING ${cols("services")}`,
      [
        id,
        c.type ?? null,
        c.name ?? null,
        c.description ?? null,
        c.enabled ?? null,
        JSON.stringify(c.extra ?? {}),
      ],
    );
    return service(row!);
  }

  async deleteService(q: Queryable, id: string): Promise<void> {
    await this.getService(id, q);
    await q.query("DELETE FROM services WHERE id = $1", [id]);
  }

  // Endpoints

  async listEndpoints(
    filter: {
      serviceId?: string | undefined;
      interface?: string | undefined;
      regionId?: string | undefined;
    } = {},
    q: Queryable = this.db,
  ): Promise<EndpointRecord[]> {
    const rows = await q.query(
      `SELECT ${cols("endpoints")} FROM endpoints WHERE ($1::text IS NULL OR service_id = $1) AND ($2::text IS NULL OR interface = $2)
         AND ($3::text IS NULL OR region_id = $3) ORDER BY service_id, interface, id`,
      [filter.serviceId ?? null, filter.interface ?? null, filter.regionId ?? null],
    );
    return rows.map(endpoint);
  }

  async getEndpoint(id: string, q: Queryable = this.db): Promise<EndpointRecord> {
    const [row] = await q.query(`SELECT ${cols("endpoints")} FROM endpoints WHERE id = $1`, [id]);
    if (!row) throw notFound(`Could not find endpoint: ${id}.`);
    return endpoint(row);
  }

  async createEndpoint(q: Queryable, e: Omit<EndpointRecord, "id">): Promise<EndpointRecord> {
    await this.getService(e.serviceId, q);
    if (e.regionId) await this.getRegion(e.regionId, q);
    const [row] = await q.query(
      `INSERT INTO endpoints (id, service_id, interface, region_id, url, enabled) VALUES ($1, $2, $3, $4, $5, $6)
       RETURNING ${cols("endpoints")}`,
      [newId(), e.serviceId, e.interface, e.regionId ?? null, e.url, e.enabled],
    );
    return endpoint(row!);
  }

  async updateEndpoint(
    q: Queryable,
    id: string,
    c: Changes<Omit<EndpointRecord, "id">>,
  ): Promise<EndpointRecord> {
    await this.getEndpoint(id, q);
    if (c.serviceId) await this.getService(c.serviceId, q);
    if (c.regionId) await this.getRegion(c.regionId, q);
    const [row] = await q.query(
      `UPDATE endpoints SET service_id = coalesce($2, service_id), interface = coalesce($3, interface),
         region_id = CASE WHEN $4 THEN $5 ELSE region_id END, url = coalesce($6, url), enabled = coalesce($7, enabled)
       WHERE id = $1 RETURNING ${cols("endpoints")}`,
      [
        id,
        c.serviceId ?? null,
        c.interface ?? null,
        c.regionId !== undefined,
        c.regionId ?? null,
        c.url ?? null,
        c.enabled ?? null,
      ],
    );
    return endpoint(row!);
  }

  async deleteEndpoint(q: Queryable, id: string): Promise<void> {
    await this.getEndpoint(id, q);
    await q.query("DELETE FROM endpoints WHERE id = $1", [id]);
  }

  /** The enabled services with their enabled endpoints (what a token's catalog lists). */
  async entries(): Promise<CatalogEntry[]> {
    const [services, endpoints] = await Promise.all([
      this.db.query(`SELECT ${cols("services")} FROM services WHERE enabled ORDER BY type, name, id`),
      this.db.query(`SELECT ${cols("endpoints")} FROM endpoints WHERE enabled ORDER BY interface, id`),
    ]);
    return services.map((s) => ({
      service: service(s),
      endpoints: endpoints.map(endpoint).filter((e) => e.serviceId === s.id),
    }));
  }
}
