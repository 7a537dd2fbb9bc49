// The server list cache: GET /servers and /servers/detail answers kept, serialized, until the
// servers of their project change. The conductor says which projects' servers changed
// (stratus.server.changed, after the write committed); this api's own writes drop their project at
// once, so a client reads its own writes through the same api. What bounds staleness otherwise:
// the event's trip over NATS (about a millisecond), and `ttlMs` should an event be lost; while the
// NATS connection is down nothing is cached or served from the cache.
//
// An answer computed while its project changed is not stored: each project has an epoch bumped
// by every change, read before the owner is asked and compared before storing (a change that
// raced the read would otherwise be cached as if it came after it).

/** Admin lists may span projects: their scope is dropped on any change. */
export const ALL_PROJECTS = "*";

export interface ListCacheOptions {
  /** Longest an answer is served (a lost event is forgotten after this). 0 turns the cache off. */
  ttlMs: number;
  /** Bytes of answers kept at most; the oldest go first. */
  maxBytes: number;
  now?: () => number;
}

interface Entry {
  scope: string;
  epoch: number;
  expires: number;
  body: Buffer;
}

export interface ListTicket {
  readonly scope: string;
  readonly epoch: number;
}

export class ListCache {
  private readonly entries = new Map<string, Entry>();
  private readonly epochs = new Map<string, number>();
  private readonly flights = new Map<string, Promise<Buffer>>();
  /** Bumped by every change: the epoch of the ALL_PROJECTS scope. */
  private anyChange = 0;
  /** Bumped by a suspension: part of every scope's epoch (the feed may have had gaps). */
  private base = 0;
  private bytes = 0;
  private on = true;
  private readonly now: () => number;

  constructor(private readonly options: ListCacheOptions) {
    this.now = options.now ?? (() => performance.now());
  }

  get ttlMs(): number {
    return this.options.ttlMs;
  }

  get enabled(): boolean {
    return this.on && this.options.ttlMs > 0;
  }

  private epochOf(scope: string): number {
    return this.base + (scope === ALL_PROJECTS ? this.anyChange : (this.epochs.get(scope) ?? 0));
  }

  /** The cached answer for `key`, if still valid. */
  get(key: string): Buffer | undefined {
    if (!this.enabled) return undefined;
    const e = this.entries.get(key);
    if (e && e.expires > this.now() && e.epoch === this.epochOf(e.scope)) {
      return e.body;
    }
    if (e) this.drop(key, e);
    return undefined;
  }

  /** Taken before asking the owner; `put` stores only if the scope did not change meanwhile. */
  ticket(scope: string): ListTicket {
    return { scope, epoch: this.epochOf(scope) };
  }

  put(key: string, ticket: ListTicket, body: Buffer): void {
    if (!this.enabled || ticket.epoch !== this.epochOf(ticket.scope)) return;
    if (body.length > this.options.maxBytes / 4) return;
    const old = this.entries.get(key);
    if (old) this.drop(key, old);
    this.entries.set(key, {
      scope: ticket.scope,
      epoch: ticket.epoch,
      expires: this.now() + this.options.ttlMs,
      body,
    });
    this.bytes += body.length;
    for (const [k, e] of this.entries) {
      if (this.bytes <= this.options.maxBytes) break;
      this.drop(k, e);
    }
  }

  /**
   * Makes the answer for `key` with `make` and keeps it, or joins the making of the same answer
   * already under way in the same epoch of the scope (many clients missing at once cost one
   * call to the owner, not one each). A change since that making began starts a new one.
   */
  async fill(key: string, scope: string, make: () => Promise<Buffer>): Promise<Buffer> {
    const ticket = this.ticket(scope);
    const flightKey = `${ticket.epoch}|${key}`;
    const running = this.flights.get(flightKey);
    if (running) return running;
    const flight = make().then(
      (body) => {
        this.flights.delete(flightKey);
        this.put(key, ticket, body);
        return body;
      },
      (err: unknown) => {
        this.flights.delete(flightKey);
        throw err;
      },
    );
    this.flights.set(flightKey, flight);
    return flight;
  }

  /** The servers of these projects changed: their answers, and every all-projects one, are void. */
  changed(projectIds: Iterable<string>): void {
    for (const p of projectIds) this.epochs.set(p, (this.epochs.get(p) ?? 0) + 1);
    this.anyChange++;
  }

  /** Nothing is served or stored until `resume` (the change feed may have gaps meanwhile). */
  suspend(): void {
    this.on = false;
    this.entries.clear();
    this.bytes = 0;
    // Far enough that no count of changes since can make an older epoch match again.
    this.base += 2 ** 40;
  }

  resume(): void {
    this.on = true;
  }

  get size(): number {
    return this.entries.size;
  }

  private drop(key: string, e: Entry): void {
    this.entries.delete(key);
    this.bytes -= e.body.length;
  }
}
