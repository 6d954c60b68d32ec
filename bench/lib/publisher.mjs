// Publisher client: one socket that joins the room and publishes at a fixed rate on a precise schedule.
import { io } from 'socket.io-client';
import { now, withDeadline } from './clock.mjs';
import { mintToken } from './tokens.mjs';

export class Publisher {
  static async connect({ url, jwtSecret, userId, room, padBytes, timeoutMs = 10_000 }) {
    const token = await mintToken(jwtSecret, userId);
    const socket = io(url, { transports: ['websocket'], auth: { token }, forceNew: true, reconnection: false, timeout: timeoutMs });
    const joined = new Promise((resolve, reject) => {
      socket.once('connect_error', (err) => reject(new Error(`publisher connect_error: ${err.message}`)));
      socket.once('connect', () =>
        socket.emit('room:join', { room }, (ack) =>
          ack?.ok ? resolve() : reject(new Error(`publisher room:join refused: ${JSON.stringify(ack)}`)),
        ),
      );
    });
    try {
      await withDeadline(joined, timeoutMs, 'publisher connect + join');
    } catch (err) {
      socket.disconnect();
      throw err;
    }
    return new Publisher(socket, room, padBytes);
  }

  constructor(socket, room, padBytes) {
    this.socket = socket;
    this.room = room;
    this.pad = 'x'.repeat(padBytes);
    this.nextSeq = 1;
  }

  /**
   * Publishes `rate` msg/s for `durationMs`, message k due at t0 + k/rate; never more than
   * rate × duration messages, and it stops by itself at t0 + duration + 2 s whatever happens.
   * When the event loop falls behind, late messages go out at once (the offered rate is kept),
   * and the worst lateness is reported.
   */
  run({ rate, durationMs, t0 = now() }) {
    const total = Math.max(1, Math.round((rate * durationMs) / 1000));
    const intervalMs = 1000 / rate;
    const hardStop = t0 + durationMs + 2000;
    const stats = { rate, durationMs, t0, firstSeq: this.nextSeq, sent: 0, acked: 0, nacks: {}, maxLagMs: 0, lastSendAt: t0 };

    return new Promise((resolve) => {
      const tick = () => {
        let t = now();
        while (stats.sent < total && t >= t0 + stats.sent * intervalMs && t < hardStop) {
          this.publishOne(t, stats);
          stats.maxLagMs = Math.max(stats.maxLagMs, t - (t0 + (stats.sent - 1) * intervalMs));
          t = now();
        }
        if (stats.sent >= total || t >= hardStop) {
          stats.lastSendAt = t;
          resolve(stats);
          return;
        }
        setTimeout(tick, Math.max(0, t0 + stats.sent * intervalMs - t));
      };
      setTimeout(tick, Math.max(0, t0 - now()));
    });
  }

  publishOne(t, stats) {
    const seq = this.nextSeq++;
    stats.sent++;
    this.socket.emit('room:publish', { room: this.room, data: { t, seq, pad: this.pad } }, (ack) => {
      if (ack?.ok) stats.acked++;
      else {
        const code = ack?.error?.code ?? 'NO_ACK';
        stats.nacks[code] = (stats.nacks[code] ?? 0) + 1;
      }
    });
  }

  close() {
    this.socket.disconnect();
  }
}
