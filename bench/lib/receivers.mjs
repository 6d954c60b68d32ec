// Receiver worker (forked by receiver-pool.mjs): holds a share of the bench clients, all in one room,
// and measures what they receive. Driven by the parent over IPC; every request carries an `id` that the
// reply echoes.
//
//   connect { url, userIds, jwtSecret, room, rooms?, batchSize, timeoutMs } -> { connected, joined, failures, ms }
//           (`rooms`, when given: the room of each user, instead of `room` for all)
//   step    { minSeq, t0, windowEnd, perSeq? }   start measuring a new phase (messages with seq < minSeq are "late";
//           `perSeq`: deliveries one message makes to this worker's clients, default all of them)
//   poll    {}                           -> { deliveries, total, receivers }   cheap probe for drain windows
//   report  {}                           -> phase statistics (histogram, counts, CPU)
//   close   {}                           disconnect everything, then exit
import { io } from 'socket.io-client';
import { now } from './clock.mjs';
import { serveParent } from './worker-ipc.mjs';
import { Histogram } from './histogram.mjs';
import { mintToken } from './tokens.mjs';

const clients = [];
let joinedCount = 0;
let disconnects = 0;
let closing = false;
let totalReceived = 0;
let phase = newPhase({ minSeq: Number.MAX_SAFE_INTEGER, t0: 0, windowEnd: 0 });

function newPhase({ minSeq, t0, windowEnd, perSeq }) {
  return {
    minSeq,
    t0,
    windowEnd,
    receiversAtStart: joinedCount - disconnects,
    perSeqExpected: perSeq,
    hist: new Histogram(),
    perSeq: new Uint16Array(1024),
    deliveries: 0,
    inWindow: 0,
    late: 0,
    foreign: 0,
    cpuAtStart: process.cpuUsage(),
    disconnectsAtStart: disconnects,
  };
}

function onMessage(msg) {
  const t = now();
  totalReceived++;
  const data = msg?.data;
  if (typeof data?.seq !== 'number' || typeof data.t !== 'number') {
    phase.foreign++;
    return;
  }
  if (data.seq < phase.minSeq) {
    phase.late++;
    return;
  }
  const index = data.seq - phase.minSeq;
  if (index >= phase.perSeq.length) {
    const grown = new Uint16Array(Math.max(index + 1, phase.perSeq.length * 2));
    grown.set(phase.perSeq);
    phase.perSeq = grown;
  }
  phase.perSeq[index]++;
  phase.deliveries++;
  if (t <= phase.windowEnd) phase.inWindow++;
  phase.hist.record(t - data.t);
}

function connectOne(url, token, room, timeoutMs) {
  return new Promise((resolve) => {
    const socket = io(url, {
      transports: ['websocket'],
      auth: { token },
      forceNew: true,
      reconnection: false,
      timeout: timeoutMs,
    });
    clients.push(socket);
    let settled = false;
    let joined = false;
    const done = (result) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve(result);
    };
    const timer = setTimeout(() => done({ ok: false, error: 'connect+join timeout' }), timeoutMs);
    socket.on('room:message', onMessage);
    socket.on('connect_error', (err) => done({ ok: false, error: `connect_error: ${err.message}` }));
    socket.on('disconnect', () => {
      if (!closing && joined) disconnects++;
      done({ ok: false, error: 'disconnected before join' });
    });
    socket.once('connect', () => {
      socket.emit('room:join', { room }, (ack) => {
        joined = ack?.ok === true && !settled;
        if (joined) done({ ok: true });
        else done({ ok: false, error: `room:join refused: ${ack?.error?.code ?? JSON.stringify(ack)}` });
      });
    });
  });
}

async function connect({ url, userIds, jwtSecret, room, rooms, batchSize, timeoutMs }) {
  const started = now();
  const tokens = await Promise.all(userIds.map((userId) => mintToken(jwtSecret, userId)));
  const failures = {};
  for (let i = 0; i < tokens.length; i += batchSize) {
    const batch = tokens.slice(i, i + batchSize);
    const results = await Promise.all(batch.map((token, k) => connectOne(url, token, rooms?.[i + k] ?? room, timeoutMs)));
    for (const r of results) {
      if (r.ok) joinedCount++;
      else failures[r.error] = (failures[r.error] ?? 0) + 1;
    }
  }
  return { joined: joinedCount, failures, ms: now() - started };
}

function report() {
  const p = phase;
  const receivers = p.receiversAtStart;
  const perSeq = p.perSeqExpected ?? receivers;
  let dups = 0;
  let seqsSeen = 0;
  for (const n of p.perSeq) {
    if (n > 0) seqsSeen++;
    if (n > perSeq) dups += n - perSeq;
  }
  const cpu = process.cpuUsage(p.cpuAtStart);
  return {
    receivers,
    deliveries: p.deliveries,
    inWindow: p.inWindow,
    dups,
    seqsSeen,
    late: p.late,
    foreign: p.foreign,
    disconnects: disconnects - p.disconnectsAtStart,
    hist: p.hist.toJSON(),
    cpuMs: (cpu.user + cpu.system) / 1000,
  };
}

async function close() {
  closing = true;
  for (const socket of clients) socket.disconnect();
  setTimeout(() => process.exit(0), 200);
}

const handlers = {
  connect,
  step: (args) => {
    phase = newPhase(args);
    return {};
  },
  poll: () => ({ deliveries: phase.deliveries, total: totalReceived, receivers: joinedCount - disconnects }),
  report,
  close,
};

serveParent(handlers, 120_000);
