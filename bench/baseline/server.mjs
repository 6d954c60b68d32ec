// Bare Socket.IO + @socket.io/redis-adapter server: the reference point for the fan-out bench.
// Same env contract as the gateway for what it uses (PORT, HOST, REDIS_URL, KEY_PREFIX, POD_ID);
// no validation, no metrics, no history. Started by bench/lib/pods.mjs.
// Auth: none by default (the user id is read from the token unverified); with BASELINE_AUTH=jose,
// the token (`auth.token`) is verified with jose's HS256 `jwtVerify` against JWT_SECRET in `io.use`,
// the least a real server does: the handshake bench's "bare + jose" reference.
import { createServer } from 'node:http';
import { Server } from 'socket.io';
import { createAdapter } from '@socket.io/redis-adapter';
import { Redis } from 'ioredis';
import { jwtVerify } from 'jose';

const port = Number(process.env.PORT ?? 3000);
const host = process.env.HOST ?? '127.0.0.1';
const redisUrl = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const keyPrefix = process.env.KEY_PREFIX ?? 'bench-baseline';
const podId = process.env.POD_ID ?? `baseline-${process.pid}`;

const pub = new Redis(redisUrl, { lazyConnect: true });
const sub = pub.duplicate();
for (const client of [pub, sub]) client.on('error', (err) => console.error(`[${podId}] redis: ${err.message}`));
await Promise.all([pub.connect(), sub.connect()]);

let ready = false;
const http = createServer((req, res) => {
  if (req.url === '/healthz' || req.url === '/readyz') {
    const ok = req.url === '/healthz' || ready;
    res.writeHead(ok ? 200 : 503, { 'content-type': 'text/plain' }).end(ok ? 'ok' : 'not ready');
    return;
  }
  res.writeHead(404).end();
});

const io = new Server(http, {
  serveClient: false,
  adapter: createAdapter(pub, sub, { key: `${keyPrefix}:io` }),
});

if (process.env.BASELINE_AUTH === 'jose') {
  const key = new TextEncoder().encode(process.env.JWT_SECRET ?? '');
  const options = { algorithms: ['HS256'], requiredClaims: ['exp', 'sub'] };
  io.use((socket, next) => {
    jwtVerify(String(socket.handshake.auth?.token ?? ''), key, options).then(
      ({ payload }) => {
        socket.data.userId = payload.sub;
        next();
      },
      () => next(new Error('AUTH_INVALID')),
    );
  });
}

let seq = 0;
io.on('connection', (socket) => {
  const userId = socket.data.userId ?? userIdFromToken(socket.handshake.auth?.token) ?? socket.id;

  socket.on('room:join', (payload, ack) => {
    const room = payload?.room;
    socket.join(room);
    if (typeof ack === 'function') ack({ ok: true, data: { room } });
  });

  socket.on('room:publish', (payload, ack) => {
    const room = payload?.room;
    const id = `${podId}-${++seq}`;
    const ts = Date.now();
    socket.to(room).emit('room:message', { room, id, ts, from: { userId }, data: payload?.data });
    if (typeof ack === 'function') ack({ ok: true, data: { id, ts } });
  });
});

// The user id is read from the JWT payload WITHOUT verifying it: the baseline has no auth.
function userIdFromToken(token) {
  if (typeof token !== 'string') return undefined;
  try {
    const claims = JSON.parse(Buffer.from(token.split('.')[1] ?? '', 'base64url').toString('utf8'));
    return typeof claims.sub === 'string' ? claims.sub : undefined;
  } catch {
    return undefined;
  }
}

await new Promise((resolve, reject) => {
  http.once('error', reject);
  http.listen(port, host, resolve);
});
ready = true;

let closing = false;
async function shutdown() {
  if (closing) return;
  closing = true;
  ready = false;
  setTimeout(() => process.exit(0), 3000).unref();
  io.close();
  await Promise.allSettled([pub.quit(), sub.quit()]);
  process.exit(0);
}
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
