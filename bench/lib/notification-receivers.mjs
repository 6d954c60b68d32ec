// Notification receiver worker (forked by the notifications scenario): one socket per user on a
// gateway, counting the `notification` events they receive. A separate process so that receiving is
// not delayed by the producer's event loop. Driven over IPC; every request carries an `id` that the
// reply echoes.
//
//   connect { url, userIds, jwtSecret, batchSize, timeoutMs } -> { connected, failures, ms }
//   phase   { tag }   start a new phase: only notifications whose data.p is `tag` count, others are "foreign"
//   poll    {}        -> { received, lastAt }
//   report  {}        -> { received, unique, dups, foreign, firstAt, lastAt, hist, cpuMs, disconnects }
//   close   {}        disconnect everything, then exit
import { io } from 'socket.io-client';
import { now } from './clock.mjs';
import { serveParent } from './worker-ipc.mjs';
import { Histogram } from './histogram.mjs';
import { mintToken } from './tokens.mjs';

const clients = [];
let closing = false;
let disconnects = 0;
let phase = newPhase(undefined);

function newPhase(tag) {
  return {
    tag,
    received: 0,
    seen: new Set(),
    dups: 0,
    foreign: 0,
    firstAt: undefined,
    lastAt: undefined,
    hist: new Histogram(),
    cpuAtStart: process.cpuUsage(),
    disconnectsAtStart: disconnects,
  };
}

function onNotification(index, n) {
  const t = now();
  const p = phase;
  const data = n?.data;
  if (p.tag === undefined || data?.p !== p.tag || typeof data.t !== 'number') {
    p.foreign++;
    return;
  }
  // One socket per user: the same notification twice on a socket is a duplicate.
  const key = `${index}:${n.id}`;
  if (p.seen.has(key)) {
    p.dups++;
    return;
  }
  p.seen.add(key);
  p.received++;
  p.firstAt ??= t;
  p.lastAt = t;
  p.hist.record(t - data.t);
}

/** Connects one socket and waits for `session:ready` (by then the gateway has joined it to user:<id>). */
function connectOne(url, token, timeoutMs) {
  return new Promise((resolve) => {
    const index = clients.length;
    const socket = io(url, { transports: ['websocket'], auth: { token }, forceNew: true, reconnection: false, timeout: timeoutMs });
    clients.push(socket);
    let settled = false;
    let ready = false;
    const done = (result) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve(result);
    };
    const timer = setTimeout(() => done({ ok: false, error: 'session:ready timeout' }), timeoutMs);
    socket.on('notification', (n) => onNotification(index, n));
    socket.on('connect_error', (err) => done({ ok: false, error: `connect_error: ${err.message}` }));
    socket.on('session:error', (err) => done({ ok: false, error: `session:error ${err?.code ?? ''}` }));
    socket.on('disconnect', () => {
      if (!closing && ready) disconnects++;
      done({ ok: false, error: 'disconnected before session:ready' });
    });
    socket.once('session:ready', () => {
      ready = !settled;
      done({ ok: ready });
    });
  });
}

async function connect({ url, userIds, jwtSecret, batchSize, timeoutMs }) {
  const started = now();
  const tokens = await Promise.all(userIds.map((userId) => mintToken(jwtSecret, userId)));
  const failures = {};
  let connected = 0;
  for (let i = 0; i < tokens.length; i += batchSize) {
    const results = await Promise.all(tokens.slice(i, i + batchSize).map((token) => connectOne(url, token, timeoutMs)));
    for (const r of results) {
      if (r.ok) connected++;
      else failures[r.error] = (failures[r.error] ?? 0) + 1;
    }
  }
  return { connected, failures, ms: now() - started };
}

function report() {
  const p = phase;
  const cpu = process.cpuUsage(p.cpuAtStart);
  return {
    received: p.received,
    unique: p.seen.size,
    dups: p.dups,
    foreign: p.foreign,
    firstAt: p.firstAt,
    lastAt: p.lastAt,
    hist: p.hist.toJSON(),
    cpuMs: (cpu.user + cpu.system) / 1000,
    disconnects: disconnects - p.disconnectsAtStart,
  };
}

function close() {
  closing = true;
  for (const socket of clients) socket.disconnect();
  setTimeout(() => process.exit(0), 200);
  return {};
}

const handlers = {
  connect,
  phase: ({ tag }) => {
    phase = newPhase(tag);
    return {};
  },
  poll: () => ({ received: phase.received, lastAt: phase.lastAt }),
  report,
  close,
};

serveParent(handlers, 60_000);
