// Connecting worker (forked through worker-ipc.mjs): opens many websocket clients, one user and
// one freshly minted HS256 token each, a bounded number in flight, and measures each connect
// (io() → `connect`). Holds the clients until told to close them. Driven by the parent over IPC:
//
//   connect { url, userIds, jwtSecret, inFlight, timeoutMs, reconnection }
//           -> { connected, failures, ms, hist }   tokens are minted before the clock starts
//   prepare { userIds, jwtSecret } -> { prepared }  mints the tokens of the next `connect` (which then
//           takes no userIds), so that the CPU a caller reads around `connect` is the connects' alone
//   status  { since }   -> { clients, connected, connectedSince, lastConnectAt }
//                          (connectedSince: clients whose latest connect is after `since`)
//   close   {}          -> { closed }   disconnects every client and waits until they are closed
import { io } from 'socket.io-client';
import { now } from './clock.mjs';
import { Histogram } from './histogram.mjs';
import { mintToken } from './tokens.mjs';
import { serveParent } from './worker-ipc.mjs';

/** @type {{ socket: import('socket.io-client').Socket, connectedAt: number }[]} */
const clients = [];

function connectOne(url, token, { timeoutMs, reconnection }) {
  const t0 = now();
  return new Promise((resolve) => {
    const socket = io(url, {
      transports: ['websocket'],
      auth: { token },
      forceNew: true,
      reconnection,
      reconnectionDelay: 1000,
      reconnectionDelayMax: 5000,
      timeout: timeoutMs,
    });
    const client = { socket, connectedAt: 0 };
    clients.push(client);
    let settled = false;
    const timer = setTimeout(() => done({ ok: false, error: 'connect timeout' }), timeoutMs);
    function done(result) {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve(result);
    }
    socket.on('connect', () => {
      client.connectedAt = now();
      done({ ok: true, ms: client.connectedAt - t0 });
    });
    socket.on('connect_error', (err) => {
      if (!reconnection) done({ ok: false, error: `connect_error: ${err.message}` });
    });
  });
}

/** Tokens minted by `prepare` for the next `connect`. */
let prepared;

async function prepare({ userIds, jwtSecret }) {
  prepared = await Promise.all(userIds.map((userId) => mintToken(jwtSecret, userId)));
  return { prepared: prepared.length };
}

async function connect({ url, userIds, jwtSecret, inFlight, timeoutMs = 15_000, reconnection = false }) {
  let tokens;
  if (userIds) tokens = await Promise.all(userIds.map((userId) => mintToken(jwtSecret, userId)));
  else if (prepared) [tokens, prepared] = [prepared, undefined];
  else throw new Error('connect: no userIds and nothing prepared');
  const hist = new Histogram();
  const failures = {};
  let connected = 0;
  let next = 0;
  const started = now();
  const lane = async () => {
    while (next < tokens.length) {
      const token = tokens[next++];
      const r = await connectOne(url, token, { timeoutMs, reconnection });
      if (r.ok) {
        connected++;
        hist.record(r.ms);
      } else failures[r.error] = (failures[r.error] ?? 0) + 1;
    }
  };
  await Promise.all(Array.from({ length: Math.min(inFlight, tokens.length) }, lane));
  return { connected, failures, ms: now() - started, hist: hist.toJSON() };
}

function status({ since = Infinity }) {
  let connected = 0;
  let connectedSince = 0;
  let lastConnectAt = 0;
  for (const c of clients) {
    if (c.socket.connected) connected++;
    if (c.connectedAt > since) {
      connectedSince++;
      if (c.connectedAt > lastConnectAt) lastConnectAt = c.connectedAt;
    }
  }
  return { clients: clients.length, connected, connectedSince, lastConnectAt };
}

async function close() {
  const n = clients.length;
  for (const c of clients.splice(0)) {
    c.socket.io.opts.reconnection = false;
    c.socket.disconnect();
  }
  // let the close frames go out before the next phase measures the server
  await new Promise((resolve) => setTimeout(resolve, 200));
  return { closed: n };
}

serveParent({ prepare, connect, status, close }, 600_000);
