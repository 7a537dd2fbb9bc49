// Names for statements that carry parameters, derived from their text: each is then prepared once
// per connection and reused, as pgJDBC and asyncpg do, instead of being parsed and planned on every
// call (docs/performance.md, "Prepared statements"). The server still chooses per statement
// between custom plans and a generic one (its plan cache rules). Statements without parameters
// (DDL, transaction control, several commands) are never named.
import { createHash } from "node:crypto";
import type { QueryOptions } from "./database.js";

/**
 * Of the named texts, long ones (statements built from a request's shape, such as the scheduler's
 * candidate search: their plans are large, and a client choosing the shapes could otherwise fill
 * every connection's plan cache) at most this many.
 */
const MAX_LONG = 64;
const LONG_STATEMENT = 2048;
const MAX_LENGTH = 32_768;

export class StatementNames {
  private readonly names = new Map<string, string>();
  private long = 0;

  /** @param max distinct texts named per database handle; more run unnamed. */
  constructor(private readonly max: number) {}

  for(sql: string, params: unknown[] | undefined, options: QueryOptions | undefined): string | undefined {
    if (options?.name) return options.name;
    if (!params?.length || sql.length > MAX_LENGTH) return undefined;
    let name = this.names.get(sql);
    if (name !== undefined || this.names.size >= this.max) return name;
    const isLong = sql.length > LONG_STATEMENT;
    if (isLong && this.long >= MAX_LONG) return undefined;
    if (isLong) this.long++;
    name = `auto_${createHash("sha1").update(sql).digest("hex").slice(0, 24)}`;
    this.names.set(sql, name);
    return name;
  }
}
