import type { Socket } from 'socket.io-client';
import type { ClientToServerEvents, ServerToClientEvents } from '@switchboard/protocol';

type ClientSocket = Socket<ServerToClientEvents, ClientToServerEvents>;
type ServerEvent = keyof ServerToClientEvents;
type PayloadOf<E extends ServerEvent> = Parameters<ServerToClientEvents[E]>[0];
type ReservedEvent = 'connect' | 'connect_error' | 'disconnect';

/** Anything with `once`/`off`/`on` for named events (an EventEmitter, a child process). */
export interface EventSource {
  once(event: string, listener: (value: never) => void): unknown;
  off(event: string, listener: (value: never) => void): unknown;
}
interface Loose {
  once(event: string, listener: (value: unknown) => void): unknown;
  off(event: string, listener: (value: unknown) => void): unknown;
  on(event: string, listener: (value: unknown) => void): unknown;
}

/** Resolves with the first argument of the next `event`, or rejects after `timeoutMs`. */
export function waitFor<E extends ServerEvent>(source: ClientSocket, event: E, timeoutMs?: number): Promise<PayloadOf<E>>;
export function waitFor(source: ClientSocket, event: ReservedEvent, timeoutMs?: number): Promise<unknown>;
export function waitFor<T = unknown>(source: EventSource, event: string, timeoutMs?: number): Promise<T>;
export function waitFor(source: ClientSocket | EventSource, event: string, timeoutMs = 5000): Promise<unknown> {
  const s = source as unknown as Loose;
  return new Promise((resolve, reject) => {
    const listener = (value: unknown) => {
      clearTimeout(timer);
      resolve(value);
    };
    const timer = setTimeout(() => {
      s.off(event, listener);
      reject(new Error(`timed out after ${timeoutMs} ms waiting for "${event}"`));
    }, timeoutMs);
    s.once(event, listener);
  });
}

/** Records every payload of `event`. */
export function collect<E extends ServerEvent>(source: ClientSocket, event: E): PayloadOf<E>[];
export function collect<T>(source: { on(event: string, listener: (value: never) => void): unknown }, event: string): T[];
export function collect(source: unknown, event: string): unknown[] {
  const seen: unknown[] = [];
  (source as Loose).on(event, (value) => seen.push(value));
  return seen;
}

/**
 * Polls `check` until it returns a truthy value (returned) or the deadline passes (throws its
 * last error, naming `what`).
 */
export async function eventually<T>(
  check: () => T | Promise<T>,
  { timeoutMs = 10_000, intervalMs = 25, what = 'condition' } = {},
): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value) return value as NonNullable<T>;
      last = new Error('condition still false');
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}: ${last instanceof Error ? last.message : String(last)}`);
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

/**
 * A callback that must be called exactly `n` times: `done` resolves on the n-th call; an
 * extra call makes `done` reject.
 */
export function times(n: number): { fn: () => void; done: Promise<void>; count(): number } {
  let calls = 0;
  let resolve!: () => void;
  let reject!: (err: Error) => void;
  const done = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return {
    fn: () => {
      calls++;
      if (calls === n) resolve();
      if (calls > n) reject(new Error(`called ${calls} times, expected ${n}`));
    },
    done,
    count: () => calls,
  };
}
