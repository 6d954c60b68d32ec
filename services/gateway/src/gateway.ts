import { createServer, type IncomingMessage, type Server as HttpServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createAdapter } from '@socket.io/redis-adapter';
import { Server } from 'socket.io';
import type { Redis } from 'ioredis';
import type { Registry as MetricsRegistry } from 'prom-client';
import type { TokenVerifier } from '@switchboard/auth';
import type { GatewayConfig } from '@switchboard/config';
import { answerHealth, startOpsServer, type Logger, type OpsServer } from '@switchboard/observability';
import { CLIENT_EVENTS, ioKey, presenceRoom, userRoom, type ClientEventName } from '@switchboard/protocol';
import { ReadModel, Registry, RoomHistory } from '@switchboard/store';
import type { GatewayContext, GatewayServer, HandlerScope, InboxReader, SocketState } from './context.js';
import { createHandshake, originAllowed, type GatewaySocket } from './handshake.js';
import { unknownEvent, wrap, type Handler, type HandlerMap } from './handler.js';
import { createNotificationHandlers } from './handlers/notifications.js';
import { createPresenceHandlers } from './handlers/presence.js';
import { createRoomHandlers } from './handlers/rooms.js';
import { createSessionHandlers } from './handlers/session.js';
import { createHeartbeat } from './heartbeat.js';
import { createGatewayMetrics, reasonLabel } from './metrics.js';
import { announceDeparture } from './presence-events.js';
import { TokenBucket } from './rate-limit.js';
import { clearExpiry, scheduleExpiry } from './session-timer.js';

export interface GatewayDeps {
  /** Commands: registry, history, inbox. */
  redis: Redis;
  /** The adapter's publisher and subscriber (a subscriber cannot run commands). */
  pubClient: Redis;
  subClient: Redis;
  verifier: TokenVerifier;
  inbox: InboxReader;
  logger: Logger;
  metrics: MetricsRegistry;
}

export interface Gateway {
  io: GatewayServer;
  podId: string;
  /** Listens on the public port and the ops port; resolves with both. */
  listen(): Promise<{ port: number; opsPort: number }>;
  /** Whether this pod takes traffic: Redis reachable and not draining. */
  ready(): Promise<boolean>;
  /**
   * Graceful shutdown: refuse new connections, drain sockets over `drainMs` (clients
   * reconnect elsewhere), leave the registry, close the adapter and servers.
   */
  close(options?: { drainMs?: number }): Promise<void>;
}

export function createGateway(deps: GatewayDeps, config: GatewayConfig): Gateway {
  const { redis, logger } = deps;
  const podId = config.podId;
  const startedAt = Date.now();
  const metrics = createGatewayMetrics(deps.metrics);
  let draining = false;
  let ops: OpsServer | undefined;

  const ready = async (): Promise<boolean> => {
    if (draining || redis.status !== 'ready') return false;
    try {
      return (await redis.ping()) === 'PONG';
    } catch {
      return false;
    }
  };

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
    adapter: createAdapter(deps.pubClient, deps.subClient, {
      key: ioKey(config.keyPrefix),
      publishOnSpecificResponseChannel: true,
      requestsTimeout: 5000,
    }),
  });

  const ctx: GatewayContext = {
    io,
    config,
    podId,
    verifier: deps.verifier,
    registry: new Registry(redis, config.keyPrefix),
    readModel: new ReadModel(redis, config.keyPrefix),
    history: new RoomHistory(redis, config.keyPrefix, config.history),
    inbox: deps.inbox,
    logger,
    metrics,
  };

  const handlers: HandlerMap = {
    ...createRoomHandlers(ctx),
    ...createPresenceHandlers(ctx),
    ...createNotificationHandlers(ctx),
    ...createSessionHandlers(ctx),
  };

  const states = new Map<string, SocketState>();
  const pendingDepartures = new Set<Promise<unknown>>();

  const handshake = createHandshake({ config, verifier: deps.verifier, readModel: ctx.readModel, logger, metrics });
  io.use((socket, next) => handshake.middleware(socket, next));

  async function register(socket: GatewaySocket, state: SocketState): Promise<boolean> {
    const { data } = socket;
    const end = metrics.registryDuration.startTimer({ op: 'connect' });
    const result = await ctx.registry.connect({
      socketId: socket.id,
      userId: data.userId,
      pod: podId,
      ...(data.name ? { name: data.name } : {}),
      maxConnections: config.limits.maxConnectionsPerUser,
    });
    end();
    if (!result.accepted) {
      // lost a race with another handshake of the same user
      socket.emit('session:error', { code: 'LIMIT_EXCEEDED', message: 'Too many connections for this user' });
      socket.disconnect(true);
      return false;
    }
    if (result.cameOnline) {
      io.to(presenceRoom(data.userId)).emit('presence:changed', { userId: data.userId, online: true, status: result.status });
    }
    const unread = data.guest ? 0 : await deps.inbox.unread(data.userId);
    socket.emit('session:ready', { userId: data.userId, socketId: socket.id, pod: podId, serverTime: Date.now(), unread });
    if (data.exp !== undefined) scheduleExpiry(socket, state, data.exp, config.tokenExpiryWarningSec);
    return true;
  }

  io.on('connection', (socket) => {
    metrics.connections.inc();
    metrics.connectionsTotal.inc({ result: 'accepted' });
    const state: SocketState = {
      bucket: new TokenBucket(config.limits.ratePerSec, config.limits.rateBurst),
      rooms: new Set(),
      watched: new Set(),
      registered: Promise.resolve(false),
      timers: {},
    };
    states.set(socket.id, state);
    const scope: HandlerScope = { socket, data: socket.data, state };

    // Handlers first, synchronously, so no early event is lost; they wait for `registered`.
    for (const event of CLIENT_EVENTS) {
      socket.on(event, wrap(ctx, scope, event, handlers[event] as Handler<ClientEventName>));
    }
    const onUnknown = unknownEvent(ctx, scope);
    const known: ReadonlySet<string> = new Set(CLIENT_EVENTS);
    socket.onAny((event: string, ...args: unknown[]) => {
      if (!known.has(event)) onUnknown(event, ...args);
    });

    void socket.join(userRoom(socket.data.userId));
    state.registered = register(socket, state).catch((err: unknown) => {
      logger.error({ err }, 'registering a socket failed');
      socket.emit('session:error', { code: 'UNAVAILABLE', message: 'Temporarily unavailable, retry later' });
      socket.conn.close();
      return false;
    });

    socket.on('disconnect', (reason) => {
      metrics.connections.dec();
      metrics.disconnectionsTotal.inc({ reason: reasonLabel(reason) });
      clearExpiry(state);
      states.delete(socket.id);
      const departure = state.registered
        .then(() => ctx.registry.disconnect(socket.id))
        .then((left) => {
          if (left) announceDeparture(io, left);
        })
        .catch((err: unknown) => logger.warn({ err }, 'unregistering a socket failed'))
        .finally(() => pendingDepartures.delete(departure));
      pendingDepartures.add(departure);
    });
  });

  /** After this pod was reaped while alive (a long stall): put its sockets back. */
  async function reRegister(): Promise<void> {
    for (const socket of io.of('/').sockets.values()) {
      const state = states.get(socket.id);
      if (!state) continue;
      await ctx.registry.connect({
        socketId: socket.id,
        userId: socket.data.userId,
        pod: podId,
        ...(socket.data.name ? { name: socket.data.name } : {}),
        maxConnections: Number.MAX_SAFE_INTEGER,
      });
      for (const room of state.rooms) await ctx.registry.join(socket.id, room);
    }
  }

  const heartbeat = createHeartbeat(ctx, startedAt, reRegister);

  return {
    io,
    podId,
    ready,
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
      logger.info({ port, opsPort: ops.port }, 'gateway listening');
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
      await Promise.allSettled([...pendingDepartures]);
      await io.close();
      await ctx.registry.dropPod(podId).catch((err: unknown) => logger.warn({ err }, 'leaving the registry failed'));
      await ops?.close();
      logger.info('gateway closed');
    },
  };
}

export { originAllowed };
