type Listener = (...args: never[]) => void;

/**
 * A small typed listener registry (the SDK runs in browsers, so no `node:events`). A listener
 * that throws does not stop the others nor the client: its error is rethrown on a later tick,
 * where it surfaces like any uncaught error.
 */
export class Listeners<Events extends { [E in keyof Events]: Listener }> {
  private readonly map = new Map<keyof Events, Set<Listener>>();

  add<E extends keyof Events>(event: E, listener: Events[E]): () => void {
    let set = this.map.get(event);
    if (!set) {
      set = new Set();
      this.map.set(event, set);
    }
    set.add(listener);
    return () => {
      set.delete(listener);
    };
  }

  emit<E extends keyof Events>(event: E, ...args: Parameters<Events[E]>): void {
    const set = this.map.get(event);
    if (!set) return;
    for (const listener of [...set]) {
      try {
        (listener as (...a: Parameters<Events[E]>) => void)(...args);
      } catch (err) {
        setTimeout(() => {
          throw err;
        }, 0);
      }
    }
  }
}
