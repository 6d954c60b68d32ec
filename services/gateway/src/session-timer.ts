import type { GatewaySocket } from './handshake.js';

/** setTimeout clamps delays above 2^31-1 ms; a longer wait re-arms. */
const MAX_DELAY = 2 ** 31 - 1;

interface Deadline {
  at: number;
  socketId: string;
  kind: 'warn' | 'expire';
  /** The schedule this deadline belongs to: a refresh or a cancel makes older ones stale. */
  generation: number;
}

interface Session {
  socket: GatewaySocket;
  exp: number;
  generation: number;
}

/**
 * Enforces access-token lifetimes on live sockets (SPEC §2): `session:expiring` `warningSec`
 * before `exp`, then `session:error` `AUTH_EXPIRED` and a disconnect at `exp`, unless
 * `auth:refresh` moved `exp` first.
 *
 * One timer for the whole pod, armed for the earliest deadline of a min-heap, instead of two
 * timers per socket: no per-socket closures, and nothing left behind by a socket that is gone
 * (`cancel` forgets it; its stale deadlines are skipped and compacted away).
 */
export class SessionClock {
  private readonly sessions = new Map<string, Session>();
  private heap: Deadline[] = [];
  private timer: NodeJS.Timeout | undefined;
  private armedAt = Infinity;
  private generation = 0;
  private closed = false;

  constructor(private readonly warningSec: number) {}

  /** Sockets whose expiry is scheduled. */
  get size(): number {
    return this.sessions.size;
  }

  /** (Re)schedules a socket's expiry; ignored for a socket that is no longer connected. */
  schedule(socket: GatewaySocket, exp: number): void {
    if (this.closed || !socket.connected) return;
    const generation = ++this.generation;
    this.sessions.set(socket.id, { socket, exp, generation });
    const expMs = exp * 1000;
    const warnMs = expMs - this.warningSec * 1000;
    // a warning already due (a slow handshake, a short token) goes out at once: the client may still refresh
    this.push({ at: warnMs, socketId: socket.id, kind: 'warn', generation });
    this.push({ at: expMs, socketId: socket.id, kind: 'expire', generation });
    this.arm();
  }

  cancel(socketId: string): void {
    if (!this.sessions.delete(socketId)) return;
    if (this.sessions.size === 0) {
      this.heap = [];
      this.disarm();
    } else if (this.heap.length > 64 && this.heap.length > 4 * this.sessions.size) {
      this.compact();
    }
  }

  close(): void {
    this.closed = true;
    this.sessions.clear();
    this.heap = [];
    this.disarm();
  }

  private fire(): void {
    this.timer = undefined;
    this.armedAt = Infinity;
    const now = Date.now();
    while (this.heap.length > 0 && this.heap[0]!.at <= now) {
      const d = this.pop();
      const session = this.sessions.get(d.socketId);
      if (!session || session.generation !== d.generation) continue;
      if (d.kind === 'warn') {
        session.socket.emit('session:expiring', { exp: session.exp });
      } else {
        this.sessions.delete(d.socketId);
        session.socket.emit('session:error', { code: 'AUTH_EXPIRED', message: 'Access token expired' });
        session.socket.disconnect(true);
      }
    }
    this.arm();
  }

  private arm(): void {
    const next = this.heap[0];
    if (!next) return this.disarm();
    if (this.timer && this.armedAt <= next.at) return;
    this.disarm();
    this.armedAt = next.at;
    this.timer = setTimeout(() => this.fire(), Math.min(MAX_DELAY, Math.max(0, next.at - Date.now())));
    this.timer.unref();
  }

  private disarm(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.armedAt = Infinity;
  }

  private compact(): void {
    const live = this.heap.filter((d) => this.sessions.get(d.socketId)?.generation === d.generation);
    this.heap = [];
    for (const d of live) this.push(d);
  }

  private push(d: Deadline): void {
    const h = this.heap;
    h.push(d);
    let i = h.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (h[parent]!.at <= d.at) break;
      h[i] = h[parent]!;
      i = parent;
    }
    h[i] = d;
  }

  private pop(): Deadline {
    const h = this.heap;
    const top = h[0]!;
    const last = h.pop()!;
    if (h.length > 0) {
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        if (l >= h.length) break;
        const r = l + 1;
        const c = r < h.length && h[r]!.at < h[l]!.at ? r : l;
        if (h[c]!.at >= last.at) break;
        h[i] = h[c]!;
        i = c;
      }
      h[i] = last;
    }
    return top;
  }
}
