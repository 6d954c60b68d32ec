// Publisher over many rooms: one socket per pod, each a member of the rooms whose receivers sit on
// that pod (the gateway only lets members publish), so a room's members and its publisher share one
// pod. Message k goes to room k mod rooms, through the socket of the pod that holds that room; one
// sequence for all rooms, so the receivers count deliveries per message as with one room.
import { io } from 'socket.io-client';
import { now, withDeadline } from './clock.mjs';
import { mintToken } from './tokens.mjs';

export class RoomsPublisher {
  /**
   * @param {object} o
   * @param {string[]} o.urls             one per pod
   * @param {string[][]} o.roomsByPod     the rooms held by each pod (same order as urls)
   * @param {string} o.userIdPrefix       the publisher of pod i is `<prefix>-<i>`
   */
  static async connect({ urls, roomsByPod, jwtSecret, userIdPrefix, padBytes, timeoutMs = 10_000, joinConcurrency = 20 }) {
    const sockets = [];
    try {
      for (let i = 0; i < urls.length; i++) {
        const token = await mintToken(jwtSecret, `${userIdPrefix}-${i}`);
        const socket = io(urls[i], { transports: ['websocket'], auth: { token }, forceNew: true, reconnection: false, timeout: timeoutMs });
        sockets.push(socket);
        await withDeadline(
          new Promise((resolve, reject) => {
            socket.once('connect_error', (err) => reject(new Error(`publisher ${i} connect_error: ${err.message}`)));
            socket.once('connect', resolve);
          }),
          timeoutMs,
          `publisher ${i} connect`,
        );
        const rooms = roomsByPod[i];
        for (let k = 0; k < rooms.length; k += joinConcurrency) {
          await withDeadline(
            Promise.all(
              rooms.slice(k, k + joinConcurrency).map(
                (room) =>
                  new Promise((resolve, reject) =>
                    socket.emit('room:join', { room }, (ack) =>
                      ack?.ok ? resolve() : reject(new Error(`publisher ${i} room:join ${room} refused: ${JSON.stringify(ack)}`)),
                    ),
                  ),
              ),
            ),
            timeoutMs,
            `publisher ${i} joins`,
          );
        }
      }
    } catch (err) {
      for (const s of sockets) s.disconnect();
      throw err;
    }
    // room k of the round-robin, and the socket of its pod
    const targets = [];
    const longest = Math.max(...roomsByPod.map((r) => r.length));
    for (let k = 0; k < longest; k++) {
      for (let i = 0; i < roomsByPod.length; i++) if (k < roomsByPod[i].length) targets.push({ room: roomsByPod[i][k], socket: sockets[i], pod: i });
    }
    return new RoomsPublisher(sockets, targets, padBytes);
  }

  constructor(sockets, targets, padBytes) {
    this.sockets = sockets;
    this.targets = targets;
    this.pad = 'x'.repeat(padBytes);
    this.nextSeq = 1;
  }

  /**
   * Publishes `rate` msg/s in all for `durationMs`, message k due at t0 + k/rate; never more than
   * rate × duration messages, and it stops by itself at t0 + duration + 2 s whatever happens.
   * Returns the counts, with the messages sent per pod in `perPod`.
   */
  run({ rate, durationMs, t0 = now() }) {
    const total = Math.max(1, Math.round((rate * durationMs) / 1000));
    const intervalMs = 1000 / rate;
    const hardStop = t0 + durationMs + 2000;
    const stats = { rate, durationMs, t0, firstSeq: this.nextSeq, sent: 0, acked: 0, nacks: {}, maxLagMs: 0, lastSendAt: t0, perPod: this.sockets.map(() => 0) };
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
    const target = this.targets[(seq - 1) % this.targets.length];
    stats.sent++;
    stats.perPod[target.pod]++;
    target.socket.emit('room:publish', { room: target.room, data: { t, seq, pad: this.pad } }, (ack) => {
      if (ack?.ok) stats.acked++;
      else {
        const code = ack?.error?.code ?? 'NO_ACK';
        stats.nacks[code] = (stats.nacks[code] ?? 0) + 1;
      }
    });
  }

  close() {
    for (const s of this.sockets) s.disconnect();
  }
}
