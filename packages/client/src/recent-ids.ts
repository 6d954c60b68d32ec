/** A set that remembers the last `capacity` ids added and forgets the oldest first. */
export class RecentIds {
  private readonly ids = new Set<string>();

  constructor(private readonly capacity: number) {}

  has(id: string): boolean {
    return this.ids.has(id);
  }

  /** Adds `id`; false when it was already there. */
  add(id: string): boolean {
    if (this.ids.has(id)) return false;
    this.ids.add(id);
    if (this.ids.size > this.capacity) {
      // a Set iterates in insertion order: the first value is the oldest
      for (const oldest of this.ids) {
        this.ids.delete(oldest);
        break;
      }
    }
    return true;
  }
}
