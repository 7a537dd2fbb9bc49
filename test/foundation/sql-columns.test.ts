// No statement of a service reads `*` from a table (packages/runtime/src/storage/columns.ts): a
// replica of the previous version keeps its prepared statements working while the next one adds
// columns. Allowed: `*` over a row source whose columns the statement itself types
// (`unnest(...)`, `jsonb_to_recordset(...) AS w(...)`), and `x.*` of a CTE `x` of the same file
// (whose own columns are checked here in turn).
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { repoRoot } from "@stratus/runtime/testing";
import { describe, expect, it } from "vitest";

/** The stars in one file's code (comments left out) that may change with a table: line: text. */
function tableStars(text: string): string[] {
  const code = text
    .split("\n")
    .map((line, i) => ({ line: i + 1, code: line.replace(/^\s*(\/\/|\*|\/\*).*$/, "") }));
  const ctes = new Set([...text.matchAll(/\b([a-z_][a-z0-9_]*) AS (?:MATERIALIZED )?\(/gi)].map((m) => m[1]));
  const found: string[] = [];
  for (const { line, code: c } of code) {
    if (/RETURNING \*/i.test(c)) found.push(`${line}: ${c.trim()}`);
    for (const m of c.matchAll(/SELECT \*(?! FROM (unnest|jsonb_to_recordset)\()/gi))
      found.push(`${line}: ${m[0]}`);
    for (const m of c.matchAll(/\b([a-z_][a-z0-9_]*)\.\*/gi)) {
      if (!ctes.has(m[1]!)) found.push(`${line}: ${c.trim()}`);
    }
  }
  return found;
}

function sources(): string[] {
  const roots = ["services", "packages"].flatMap((top) =>
    readdirSync(join(repoRoot, top)).map((name) => join(repoRoot, top, name, "src")),
  );
  return roots.flatMap((root) => {
    try {
      return readdirSync(root, { recursive: true, encoding: "utf8" })
        .filter(
          (f) =>
            f.endsWith(".ts") && !f.endsWith(".test.ts") && !f.includes("gen/") && !f.includes("testing/"),
        )
        .map((f) => join(root, f));
    } catch {
      return [];
    }
  });
}

describe("statements name their columns", () => {
  it("finds a table's star where there is one (the check can fail)", () => {
    expect(tableStars('q.query("SELECT * FROM users WHERE id = $1")')).toHaveLength(1);
    expect(tableStars("`UPDATE t SET a = 1 RETURNING *`")).toHaveLength(1);
    expect(tableStars("`SELECT s.* FROM servers s`")).toHaveLength(1);
    expect(tableStars("`WITH s AS (INSERT INTO t (a) VALUES (1) RETURNING a) SELECT s.* FROM s`")).toEqual(
      [],
    );
    expect(tableStars("`SELECT * FROM unnest($1::int[]) AS u(a)`")).toEqual([]);
  });

  it("in every service and package", () => {
    const files = sources();
    expect(files.length).toBeGreaterThan(50);
    const found = files.flatMap((f) =>
      tableStars(readFileSync(f, "utf8")).map((s) => `${f.slice(repoRoot.length + 1)}:${s}`),
    );
    expect(found).toEqual([]);
  });
});
