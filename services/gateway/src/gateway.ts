import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server as HttpServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createAdapter, createShardedAdapter } from '@socket.io/redis-adapter';
import { Server } from 'socket.io';
import type { Registry as MetricsRegistry } from 'prom-client';
import type { TokenVerifier } from '@switchboard/auth';
import type { GatewayConfig } from '@switchboard/config';
import { answerHealth, startOpsServer, type Logger, type OpsServer } from '@switchboard/observability';
import { CLIENT_EVENTS, ioKey, userRoom, type ClientEventName } from '@switchboard/protocol';
import {
  handleRejections,
  InboxStore,
  keys,
  pingWithin,
  PublishBudget,
  ReadModel,
  Registry,
  RoomHistory,
  throttled,
  type HeldSocket,
  type RedisClient,
} from '@switchboard/store';
import type { GatewayContext, GatewayServer, HandlerScope, InboxReader, SocketState } from './context.js';
import { createHandshake, originAllowed, type Admission, type GatewaySocket } from './handshake.js';
import { unknownEvent, wrap, type EventListener, type Handler, type HandlerMap } from './handler.js';
import { createNotificationHandlers } from './handlers/notifications.js';
import { createPresenceHandlers } from './handlers/presence.js';
import { createRoomHandlers } from './handlers/rooms.js';
import { createSessionHandlers } from './handlers/session.js';
import { createHeartbeat } from './heartbeat.js';
import { createGatewayMetrics, reasonLabel } from './metrics.js';
import { PodRegistry } from './pod-registry.js';
import { announceArrival, announceDeparture, announceRestore } from './presence-events.js';
import { LazySet } from './lazy-set.js';
import { TokenBucket } from './rate-limit.js';
import { SessionClock } from './session-timer.js';

export interface GatewayDeps {
  /** Commands: registry, history, inbox. */
  redis: RedisClient;
  /**
   * The adapter's publisher and subscriber (a subscriber cannot run commands). With
   * `PUBSUB_MODE=sharded` on Redis Cluster, the subscriber needs one connection per shard
   * (`shardedSubscriber` of `createRedisClient`). The subscriber must be ready (`waitReady`).
   */
  pubClient: RedisClient;
  subClient: RedisClient;
  verifier: TokenVerifier;
  inbox: InboxReader;
  logger: Logger;
  metrics: MetricsRegistry;
}

/** What the pod holds in memory, for tests that check nothing outlives a socket. */
export interface GatewayInternals {
  /** Sockets with state on this pod (admitted, connected or not yet). */
  sockets: number;
  /** Sockets whose token expiry is scheduled. */
  expiries: number;
  /** Handshakes under way (verifying, registering). */
  handshaking: number;
}

export interface Gateway {
  io: GatewayServer;
  podId: string;
  /** This process in the registry: unique, also when a pod restarts under the same `POD_ID`. */
  instanceId: string;
  /** Listens on the public port and the ops port; resolves with both. */
  listen(): Promise<{ port: number; opsPort: number }>;
  /** Whether this pod takes traffic: Redis reachable and not draining. */
  ready(): Promise<boolean>;
  internals(): GatewayInternals;
  /**
   * Graceful shutdown: refuse new connections, drain sockets over `drainMs` (clients
   * reconnect elsewhere), leave the registry, close the adapter and servers.
   */
  close(options?: { drainMs?: number }): Promise<void>;
}

export function createGateway(deps: GatewayDeps, config: GatewayConfig): Gateway {
  const { redis, logger } = deps;
  // The adapter subscribes at once. ioredis sends a (S)SUBSCRIBE while it is still connecting,
  // before its ready check, whose INFO the server then refuses on a connection in subscriber
  // mode: the subscription may be lost. Wait for `waitReady(subClient)` first.
  if (deps.subClient.status !== 'ready') throw new Error(`createGateway: the subscriber must be ready (it is ${deps.subClient.status})`);
  const podId = config.podId;
  const instance = { id: `${podId}#${randomBytes(6).toString('base64url')}`, pod: podId };
  const metrics = createGatewayMetrics(deps.metrics);
  let draining = false;
  let ops: OpsServer | undefined;

  const ready = async (): Promise<boolean> => !draining && (await pingWithin(redis, 1000));

  const httpServer: HttpServer = createServer((req: IncomingMessage, res: ServerResponse) => {
    void answerHealth(req, res, { ready }).then((answered) => {
      if (answered) return;
      res.writeHead(404, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: { code: 'NOT_FOUND', message: 'not found' } }));
    });
  });

  const io: GatewayServer = new Server(httpServer, {
    serveClient: false,
    // Frames above this close the connection (engine level); below it, oversize payloads get a typed error.
    maxHttpBufferSize: Math.max(1_000_000, config.limits.maxPayloadBytes * 4),
    connectTimeout: 10_000,
    cors: {
      origin: config.corsOrigins === '*' ? true : config.corsOrigins.length ? config.corsOrigins : false,
      credentials: true,
    },
    // Engine-level gate for every new session, polling or websocket: no new sessions while draining.
    // The origin is refused at the Socket.IO level below, so the client gets a typed connect_error.
    allowRequest: (_req, callback) => callback(draining ? 'Server is shutting down' : null, !draining),
    adapter:
      config.redis.pubsubMode === 'sharded'
        ? // SSUBSCRIBE per room this pod holds (dynamic), SPUBLISH to the room's channel: each pod
          // receives only what concerns its sockets
          createShardedAdapter(deps.pubClient, deps.subClient, { channelPrefix: ioKey(config.keyPrefix), subscriptionMode: 'dynamic' })
        : createAdapter(deps.pubClient, deps.subClient, {
            key: ioKey(config.keyPrefix),
            publishOnSpecificResponseChannel: true,
            requestsTimeout: 5000,
          }),
  });

  // The adapters publish and subscribe without awaiting: a failure while Redis is away must be
  // counted and logged, not left unhandled (it would end the process).
  const pubsubFailed = throttled((err: unknown, method: string) => logger.warn({ err, method }, 'pub/sub command failed'), 5000);
  const onPubsubError = (err: unknown, method: string) => {
    metrics.pubsubErrors.inc();
    pubsubFailed(err, method);
  };
  handleRejections(deps.pubClient, ['publish', 'spublish'], onPubsubError);
  handleRejections(deps.subClient, ['subscribe', 'psubscribe', 'ssubscribe', 'unsubscribe', 'punsubscribe', 'sunsubscribe'], onPubsubError);

  // what the adapter's subscriber receives: the cost of pub/sub on this pod (classic: every broadcast)
  const received = () => metrics.pubsubReceived.inc();
  for (const event of ['messageBuffer', 'pmessageBuffer', 'smessageBuffer']) deps.subClient.on(event, received);

  /** Every socket this pod admitted, until it is gone. */
  const states = new Map<string, SocketState>();
  const pendingDepartures = new Set<Promise<unknown>>();

  const held = (): HeldSocket[] => {
    const out: HeldSocket[] = [];
    for (const socket of io.of('/').sockets.values()) {
      const state = states.get(socket.id);
      if (!state?.connected) continue;
      out.push({
        ...state.ref,
        ...(socket.data.name ? { name: socket.data.name } : {}),
        connectedAt: socket.data.connectedAt,
        rooms: [...state.rooms],
      });
    }
    return out;
  };

  const registry = new Registry(redis, config.keyPrefix, config.events ? { events: config.events } : {});
  const pod = new PodRegistry({ registry, instance, logger, metrics, held, announce: (r) => announceRestore(io, r) });
  const readModel = new ReadModel(redis, config.keyPrefix);
  const ctx: GatewayContext = {
    io,
    config,
    podId,
    verifier: deps.verifier,
    pod,
    readModel,
    history: new RoomHistory(redis, config.keyPrefix, config.history),
    budget: new PublishBudget(redis, keys(config.keyPrefix), config.limits.publishBudget),
    inbox: deps.inbox,
    clock: new SessionClock(config.tokenExpiryWarningSec),
    logger,
    metrics,
  };

  const handlers: HandlerMap = {
    ...createRoomHandlers(ctx),
    ...createPresenceHandlers(ctx),
    ...createNotificationHandlers(ctx),
    ...createSessionHandlers(ctx),
  };

  /** Unregisters a socket and announces what its departure changed. */
  function depart(state: SocketState): void {
    const departure = pod
      .disconnect(state.ref, [...state.rooms])
      .then((left) => {
        if (left) announceDeparture(io, left);
      })
      .catch((err: unknown) => logger.warn({ err }, 'unregistering a socket failed'))
      .finally(() => pendingDepartures.delete(departure));
    pendingDepartures.add(departure);
  }

  const admissions = new Map<string, Admission>();
  let handshaking = 0;
  const handshake = createHandshake({
    config,
    verifier: deps.verifier,
    pod,
    inbox: deps.inbox,
    unreadInRegistry: deps.inbox instanceof InboxStore && deps.inbox.readsFrom(redis, config.keyPrefix),
    logger,
    metrics,
  });
  io.use((socket, next) => {
    handshaking++;
    const done = (err?: Error) => {
      handshaking--;
      next(err);
    };
    handshake.middleware(socket, done, (admission) => {
      const state: SocketState = {
        bucket: new TokenBucket(config.limits.ratePerSec, config.limits.rateBurst),
        ref: { socketId: socket.id, userId: socket.data.userId, guest: socket.data.guest },
        rooms: new LazySet(),
        watched: new LazySet(),
        connected: false,
      };
      states.set(socket.id, state);
      admissions.set(socket.id, admission);
      // Socket.IO connects the socket on the next tick, or drops it silently when the client went
      // away during the handshake: then nothing of it may stay, here or in the registry.
      setImmediate(() => {
        if (state.connected) return;
        states.delete(socket.id);
        admissions.delete(socket.id);
        depart(state);
      });
    });
  });

  // One listener per event for the whole pod, reached through one `onAny` listener per socket
  // that finds the socket's scope: a connection holds no closures of its own.
  const listeners = new Map<string, EventListener>(
    CLIENT_EVENTS.map((event) => [event, wrap(ctx, event, handlers[event] as Handler<ClientEventName>)]),
  );
  const onUnknown = unknownEvent(ctx);
  const scopes = new Map<string, HandlerScope>();
  function onEvent(this: GatewaySocket, event: string, ...args: unknown[]): void {
    const scope = scopes.get(this.id);
    if (!scope) return;
    const listener = listeners.get(event);
    if (listener) listener(scope, args);
    else onUnknown(scope, event, args);
  }
  function onDisconnect(this: GatewaySocket, reason: string): void {
    const scope = scopes.get(this.id);
    if (!scope) return;
    scopes.delete(this.id);
    metrics.connections.dec();
    metrics.disconnectionsTotal.inc({ reason: reasonLabel(reason) });
    ctx.clock.cancel(this.id);
    states.delete(this.id);
    pod.unwatch(scope.state.watched);
    scope.state.watched.clear(); // taken back once, even if a watch still in flight fails later
    depart(scope.state);
  }

  io.on('connection', (socket: GatewaySocket) => {
    const state = states.get(socket.id);
    const admission = admissions.get(socket.id);
    admissions.delete(socket.id);
    if (!state || !admission) {
      socket.disconnect(true);
      return;
    }
    state.connected = true;
    metrics.connections.inc();
    metrics.connectionsTotal.inc({ result: 'accepted' });
    scopes.set(socket.id, { socket, data: socket.data, state });
    // The handshake has read what it needs (socket.handshake keeps the headers): the connection
    // does not keep the HTTP request for its life (Socket.IO's memory advice). That frees it for
    // polling clients; over websocket, engine.io's upgrade response object still holds it.
    (socket.conn as { request: unknown }).request = null;
    socket.onAny(onEvent);

    void socket.join(userRoom(socket.data.userId));
    // presence to the user's watchers, if the registry knows of any (nobody else would hear it)
    if (admission.cameOnline && admission.watched) announceArrival(io, socket.data.userId, admission.status);
    socket.emit('session:ready', {
      userId: socket.data.userId,
      socketId: socket.id,
      pod: podId,
      serverTime: Date.now(),
      unread: admission.unread,
    });
    if (socket.data.exp !== undefined) ctx.clock.schedule(socket, socket.data.exp);
    socket.on('disconnect', onDisconnect);
  });

  // After Redis came back, it may have lost writes (a restart from an older snapshot): make the
  // registry hold what this pod holds.
  let seenReady = redis.status === 'ready';
  redis.on('ready', () => {
    if (!seenReady) {
      seenReady = true;
      return;
    }
    if (draining) return;
    pod.restore().catch((err: unknown) => logger.warn({ err }, 'restoring the registry after a reconnect failed'));
  });

  const heartbeat = createHeartbeat({ io, registry, readModel, pod, intervalMs: config.heartbeatIntervalMs, logger, metrics });

  return {
    io,
    podId,
    instanceId: instance.id,
    ready,
    internals: () => ({ sockets: states.size, expiries: ctx.clock.size, handshaking }),
    async listen() {
      await heartbeat.start();
      await new Promise<void>((resolve, reject) => {
        httpServer.once('error', reject);
        httpServer.listen(config.port, config.host, () => {
          httpServer.off('error', reject);
          resolve();
        });
      });
      ops = await startOpsServer({ port: config.opsPort, host: config.host, registry: deps.metrics, checks: { ready }, logger });
      const port = (httpServer.address() as AddressInfo).port;
      logger.info({ port, opsPort: ops.port, instance: instance.id }, 'gateway listening');
      return { port, opsPort: ops.port };
    },
    async close({ drainMs = Math.min(5000, config.shutdownTimeoutMs / 2) } = {}) {
      if (draining) return;
      draining = true;
      heartbeat.stop();
      handshake.close();
      httpServer.close();
      const sockets = [...io.of('/').sockets.values()];
      logger.info({ sockets: sockets.length, drainMs }, 'draining');
      // Spread the disconnects so the clients do not all reconnect to the other pods at once.
      const batches = Math.max(1, Math.min(20, Math.ceil(sockets.length / 50)));
      const perBatch = Math.ceil(sockets.length / batches);
      for (let i = 0; i < batches; i++) {
        for (const socket of sockets.slice(i * perBatch, (i + 1) * perBatch)) socket.conn.close();
        if (i < batches - 1) await new Promise((r) => setTimeout(r, drainMs / batches));
      }
      await io.close();
      ctx.clock.close();
      while (pendingDepartures.size > 0) await Promise.allSettled([...pendingDepartures]);
      await pod
        .leaveCluster()
        .then((how) => {
          if (how === 'left-to-reaper') logger.warn('some sockets could not be unregistered; the reaper removes them');
        })
        .catch((err: unknown) => logger.warn({ err }, 'leaving the registry failed; the reaper removes this instance'));
      await ops?.close();
      logger.info('gateway closed');
    },
  };
}

export { originAllowed };
