/**
 * A set that allocates its storage on the first `add`: most connections never join a room or
 * watch anyone, and an empty `Set` still costs a hash table per connection.
 */
export class LazySet<T> implements Iterable<T> {
  private items: Set<T> | undefined;

  get size(): number {
    return this.items?.size ?? 0;
  }

  has(item: T): boolean {
    return this.items?.has(item) ?? false;
  }

  add(item: T): this {
    (this.items ??= new Set()).add(item);
    return this;
  }

  delete(item: T): boolean {
    return this.items?.delete(item) ?? false;
  }

  clear(): void {
    this.items = undefined;
  }

  [Symbol.iterator](): Iterator<T> {
    return (this.items ?? EMPTY)[Symbol.iterator]() as Iterator<T>;
  }
}

const EMPTY: ReadonlySet<never> = new Set<never>();
