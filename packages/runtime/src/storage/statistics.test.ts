// The statistics policy's decisions, table by table, from the counters it reads.
import { describe, expect, it } from "vitest";
import { statisticsPolicy, type TableCounters, workFor } from "./statistics.js";

const table = (over: Partial<TableCounters>): TableCounters => ({
  name: "public.t",
  live: 1000,
  dead: 0,
  changed: 0,
  planned: 1000,
  ...over,
});

describe("the statistics policy", () => {
  const pglite = statisticsPolicy("pglite", 0);
  const postgres = statisticsPolicy("postgres", 0);

  it("vacuums on PGlite past autovacuum's threshold (50 + 20% of the live rows dead), never on PostgreSQL", () => {
    expect(workFor(table({ dead: 250 }), pglite)).toEqual({ vacuum: false, analyze: false });
    expect(workFor(table({ dead: 251 }), pglite)).toEqual({ vacuum: true, analyze: false });
    expect(workFor(table({ dead: 100_000 }), postgres)).toEqual({ vacuum: false, analyze: false });
  });

  it("analyzes on PGlite past autovacuum's threshold (50 + 10% of the live rows changed), never on PostgreSQL", () => {
    expect(workFor(table({ changed: 150 }), pglite).analyze).toBe(false);
    expect(workFor(table({ changed: 151 }), pglite).analyze).toBe(true);
    expect(workFor(table({ changed: 100_000 }), postgres).analyze).toBe(false);
  });

  it("with growth 2, analyzes a table once it has doubled and grown by 100 rows, on either backend", () => {
    for (const backend of ["pglite", "postgres"] as const) {
      const doubling = statisticsPolicy(backend, 2);
      // Never analyzed (reltuples -1): once it holds 100 rows.
      expect(workFor(table({ live: 99, planned: -1 }), doubling).analyze).toBe(false);
      expect(workFor(table({ live: 100, planned: -1 }), doubling).analyze).toBe(true);
      // Analyzed at 110: again at 220, not before.
      expect(workFor(table({ live: 219, planned: 110 }), doubling).analyze).toBe(false);
      expect(workFor(table({ live: 220, planned: 110 }), doubling).analyze).toBe(true);
      // Doubled but by fewer than 100 rows.
      expect(workFor(table({ live: 60, planned: 30 }), doubling).analyze).toBe(false);
      // Growth never vacuums.
      expect(workFor(table({ live: 5000, planned: 10, dead: 0 }), doubling).vacuum).toBe(false);
    }
  });

  it("ignores growth when it is 0", () => {
    expect(workFor(table({ live: 1_000_000, planned: -1 }), postgres).analyze).toBe(false);
  });
});
