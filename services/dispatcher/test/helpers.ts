import type { ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createAdapter } from '@socket.io/redis-adapter';
import type { Emitter } from '@socket.io/redis-emitter';
import { Redis } from 'ioredis';
import { Registry } from 'prom-client';
import { Server } from 'socket.io';
import { io as connectClient, type Socket as ClientSocket } from 'socket.io-client';
import { loadDispatcherConfig } from '@switchboard/config';
import { createLogger } from '@switchboard/observability';
import {
  ioKey,
  userRoom,
  type ClientToServerEvents,
  type Notification,
  type ServerToClientEvents,
} from '@switchboard/protocol';
import { closeRedis, waitReady } from '@switchboard/store';
import { serviceMain } from '@switchboard/harness';
import { spawnOwned } from '@switchboard/testkit';
import { createDispatcher, type Dispatcher } from '../src/index.js';

// ---- Socket.IO servers standing in for gateway pods ----

export interface IoServer {
  port: number;
  close(): Promise<void>;
}

/**
 * A Socket.IO server on the Redis adapter with the gateways' key. A socket joins
 * `user:<auth.userId>` and every room in `auth.rooms`.
 */
export async function startIoServer(redisUrl: string, keyPrefix: string): Promise<IoServer> {
  const pub = new Redis(redisUrl);
  const sub = pub.duplicate();
  pub.on('error', () => {});
  sub.on('error', () => {});
  // a subscription sent while the client is still connecting races its ready check
  await Promise.all([waitReady(pub), waitReady(sub)]);
  const http = createServer();
  const io = new Server<ClientToServerEvents, ServerToClientEvents>(http, {
    adapter: createAdapter(pub, sub, { key: ioKey(keyPrefix) }),
  });
  io.on('connection', (socket) => {
    const auth = socket.handshake.auth as { userId?: string; rooms?: string[] };
    if (auth.userId) void socket.join(userRoom(auth.userId));
    for (const room of auth.rooms ?? []) void socket.join(room);
  });
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
  return {
    port: (http.address() as AddressInfo).port,
    close: async () => {
      await new Promise<void>((resolve) => {
        void io.close(() => resolve());
      });
      await Promise.all([closeRedis(pub), closeRedis(sub)]);
    },
  };
}

/** Notifications whose type is this are readiness probes, not part of what a test checks. */
const PROBE_TYPE = 'test.probe';

export interface TestClient {
  socket: ClientSocket<ServerToClientEvents, ClientToServerEvents>;
  /** Notifications received so far, probes left out. */
  received: Notification[];
  /** Resolves with the first received notification matching `pred`, already received or not. */
  next(pred: (n: Notification) => boolean, timeoutMs?: number): Promise<Notification>;
  ids(): string[];
  close(): void;
}

export async function connect(port: number, auth: { userId?: string; rooms?: string[] }): Promise<TestClient> {
  const socket: ClientSocket<ServerToClientEvents, ClientToServerEvents> = connectClient(`http://127.0.0.1:${port}`, {
    auth,
    transports: ['websocket'],
    reconnection: false,
    forceNew: true,
  });
  const received: Notification[] = [];
  const probes: Notification[] = [];
  const waiters = new Set<() => void>();
  socket.on('notification', (n) => {
    (n.type === PROBE_TYPE ? probes : received).push(n);
    for (const w of [...waiters]) w();
  });
  const find = (pred: (n: Notification) => boolean) => received.find(pred) ?? probes.find(pred);
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', () => resolve());
    socket.once('connect_error', reject);
  });
  return {
    socket,
    received,
    ids: () => received.map((n) => n.id),
    next: (pred, timeoutMs = 10_000) =>
      new Promise((resolve, reject) => {
        const check = () => {
          const hit = find(pred);
          if (!hit) return;
          clearTimeout(timer);
          waiters.delete(check);
          resolve(hit);
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`no matching notification within ${timeoutMs} ms (got ${received.map((n) => n.id).join(', ')})`));
        }, timeoutMs);
        waiters.add(check);
        check();
      }),
    close: () => {
      socket.disconnect();
    },
  };
}

/**
 * Resolves once every client gets a probe broadcast through Redis: the servers' adapters are
 * subscribed, so what is published from now on reaches these sockets.
 */
export async function primeClients(emitter: Emitter<ServerToClientEvents>, clients: readonly TestClient[]): Promise<void> {
  const id = `probe-${randomUUID()}`;
  const arrived = Promise.all(clients.map((c) => c.next((n) => n.id === id, 10_000)));
  let done = false;
  void arrived.then(() => (done = true), () => (done = true));
  for (let i = 0; i < 100 && !done; i++) {
    emitter.emit('notification', { id, type: PROBE_TYPE, ts: Date.now() });
    await Promise.race([arrived, new Promise((r) => setTimeout(r, 100))]);
  }
  await arrived;
}

// ---- dispatchers ----

export interface InProcessDispatcher {
  dispatcher: Dispatcher;
  registry: Registry;
  close(): Promise<void>;
}

/** `createDispatcher` with its own Redis clients, the way `main.ts` wires it. */
export async function startDispatcher(
  redisUrl: string,
  keyPrefix: string,
  env: Record<string, string> = {},
): Promise<InProcessDispatcher> {
  const config = loadDispatcherConfig({
    REDIS_URL: redisUrl,
    KEY_PREFIX: keyPrefix,
    OPS_PORT: '0',
    HOST: '127.0.0.1',
    STALLED_INTERVAL_MS: '1000',
    ...env,
  });
  const logger = createLogger({ service: 'dispatcher', level: 'silent' });
  const registry = new Registry();
  const connection = new Redis(redisUrl, { maxRetriesPerRequest: null });
  const redis = new Redis(redisUrl, { maxRetriesPerRequest: null });
  connection.on('error', () => {});
  redis.on('error', () => {});
  const dispatcher = createDispatcher({ connection, redis, logger, registry }, config);
  await dispatcher.start();
  return {
    dispatcher,
    registry,
    close: async () => {
      await dispatcher.close();
      await Promise.all([closeRedis(connection), closeRedis(redis)]);
    },
  };
}


export interface DispatcherProcess {
  child: ChildProcess;
  /** Resolves when the process has exited. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Everything written to stdout and stderr so far. */
  output(): string;
  /** JSON log lines so far. */
  logs(): Array<Record<string, unknown>>;
  /** Kills the process (SIGKILL unless told) and waits for it to exit. */
  kill(signal?: NodeJS.Signals): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Runs `node services/dispatcher/dist/main.js` configured by `env` alone. */
export function spawnDispatcher(env: Record<string, string>): DispatcherProcess {
  const child = spawnOwned(process.execPath, [serviceMain('dispatcher')], {
    env: { PATH: process.env.PATH ?? '', OPS_PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'warn', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve({ code: child.exitCode, signal: child.signalCode });
    child.once('exit', (code, signal) => resolve({ code, signal }));
  });
  return {
    child,
    exited,
    output: () => out,
    logs: () =>
      out
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l) as Record<string, unknown>),
    kill: async (signal = 'SIGKILL') => {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
  };
}
