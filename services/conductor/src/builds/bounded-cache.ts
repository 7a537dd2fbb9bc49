// A cache bounded in size and in age: each entry is answered for `maxAgeMs` after it was set, and
// past `maxEntries` the entry set longest ago goes. A process that meets many keys once (networks
// of many projects) keeps at most `maxEntries` of them, however long it runs.

export class BoundedCache<K, V> {
  /** In the order the entries were set (a Map keeps insertion order): the first is the oldest. */
  private readonly entries = new Map<K, { value: V; at: number }>();

  constructor(
    private readonly o: { maxEntries: number; maxAgeMs: number },
    private readonly now: () => number = () => Date.now(),
  ) {}

  get size(): number {
    return this.entries.size;
  }

  /** The value set for key less than maxAgeMs ago, if any (an older one is dropped). */
  get(key: K): V | undefined {
    const e = this.entries.get(key);
    if (!e) return undefined;
    if (this.now() - e.at < this.o.maxAgeMs) return e.value;
    this.entries.delete(key);
    return undefined;
  }

  set(key: K, value: V): void {
    this.entries.delete(key);
    this.entries.set(key, { value, at: this.now() });
    while (this.entries.size > this.o.maxEntries) {
      const oldest = this.entries.keys().next().value as K;
      this.entries.delete(oldest);
    }
  }
}
