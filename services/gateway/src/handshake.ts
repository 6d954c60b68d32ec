import { randomBytes } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { Socket } from 'socket.io';
import { AuthError, type TokenVerifier } from '@switchboard/auth';
import type { GatewayConfig } from '@switchboard/config';
import {
  HandshakeError,
  type ClientToServerEvents,
  type InterServerEvents,
  type PresenceStatus,
  type ServerToClientEvents,
  type SocketData,
} from '@switchboard/protocol';
import type { Logger } from '@switchboard/observability';
import type { ConnectResult } from '@switchboard/store';
import type { InboxReader } from './context.js';
import type { GatewayMetrics } from './metrics.js';
import type { PodRegistry } from './pod-registry.js';
import { KeyedBuckets } from './rate-limit.js';

export type GatewaySocket = Socket<ClientToServerEvents, ServerToClientEvents, InterServerEvents, SocketData>;

/** Where a token was found, for logs and metrics (never the token itself). */
type TokenSource = 'auth' | 'header' | 'cookie' | 'query';

/**
 * The token of a handshake: `auth.token`, then `Authorization: Bearer`, then the cookie, then
 * the `token` query parameter when enabled (SPEC §2). A present but malformed value counts as
 * a token (and is refused), so a bad credential is never downgraded to a guest.
 */
export function findToken(
  socket: Pick<GatewaySocket, 'handshake'>,
  config: Pick<GatewayConfig, 'tokenCookie' | 'allowQueryToken'>,
): { token: string; source: TokenSource } | undefined {
  const { auth, headers, query } = socket.handshake;
  const fromAuth = (auth as Record<string, unknown> | undefined)?.token;
  if (fromAuth !== undefined && fromAuth !== null) {
    return { token: typeof fromAuth === 'string' ? fromAuth : '\u0000', source: 'auth' };
  }
  const header = headers.authorization;
  if (typeof header === 'string' && header.length > 0) {
    const m = /^Bearer\s+(\S+)\s*$/i.exec(header);
    return { token: m?.[1] ?? '\u0000', source: 'header' };
  }
  const cookie = readCookie(headers.cookie, config.tokenCookie);
  if (cookie !== undefined) return { token: cookie, source: 'cookie' };
  if (config.allowQueryToken) {
    const q = query.token;
    if (q !== undefined) return { token: typeof q === 'string' ? q : '\u0000', source: 'query' };
  }
  return undefined;
}

function readCookie(header: string | undefined, name: string): string | undefined {
  if (!header) return undefined;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq < 0 || part.slice(0, eq).trim() !== name) continue;
    const raw = part.slice(eq + 1).trim().replace(/^"(.*)"$/, '$1');
    try {
      return decodeURIComponent(raw);
    } catch {
      return '\u0000';
    }
  }
  return undefined;
}

const DEFAULT_PORTS: Readonly<Record<string, number>> = { 'http:': 80, 'ws:': 80, 'https:': 443, 'wss:': 443 };

/** `host[:port]` of a Host header: the host in lower case (IPv6 in brackets), the port if given. */
function parseHostHeader(host: string): { hostname: string; port?: number } | undefined {
  const m = /^(\[[0-9A-Fa-f:.]+\]|[^\s:[\]/@]+)(?::(\d{1,5}))?$/.exec(host.trim());
  if (!m) return undefined;
  return { hostname: m[1]!.toLowerCase(), ...(m[2] !== undefined ? { port: Number(m[2]) } : {}) };
}

/**
 * Whether `origin` names the server the request was sent to: the same host (case-insensitive)
 * and port, default ports normalised (http/ws 80, https/wss 443). A Host without a port means
 * the default port of the origin's scheme: the Host header carries no scheme, and behind a
 * TLS-terminating load balancer the gateway cannot tell which one the client used.
 */
export function sameOrigin(origin: string, host: string | undefined): boolean {
  if (host === undefined || !URL.canParse(origin)) return false;
  const o = new URL(origin);
  const defaultPort = DEFAULT_PORTS[o.protocol];
  const h = parseHostHeader(host);
  if (defaultPort === undefined || !h || o.hostname === '') return false;
  const originPort = o.port === '' ? defaultPort : Number(o.port);
  return o.hostname === h.hostname && originPort === (h.port ?? defaultPort);
}

/**
 * The origin check of every handshake (SPEC §2): no `Origin` is not a browser; an `Origin`
 * equal to the request's own `Host` is same-origin (stock websocket clients such as
 * python-socketio and Starscream send one); any other needs `CORS_ORIGINS`. `host` is the
 * `Host` header, never `X-Forwarded-Host`, which any client can set.
 */
export function originAllowed(
  origin: string | undefined,
  host: string | undefined,
  allowed: GatewayConfig['corsOrigins'],
): boolean {
  if (origin === undefined) return true; // not a browser: origins only constrain browsers
  if (allowed === '*' || sameOrigin(origin, host)) return true;
  return allowed.includes(origin);
}

export function clientAddress(req: IncomingMessage | GatewaySocket['handshake'], trustProxy: boolean): string {
  const headers = req.headers;
  if (trustProxy) {
    const xff = headers['x-forwarded-for'];
    const first = (Array.isArray(xff) ? xff[0] : xff)?.split(',')[0]?.trim();
    if (first) return first;
  }
  return 'address' in req ? req.address : (req.socket.remoteAddress ?? 'unknown');
}

export interface HandshakeDeps {
  config: GatewayConfig;
  verifier: TokenVerifier;
  pod: PodRegistry;
  inbox: Pick<InboxReader, 'unread'>;
  /**
   * The registry's connect reads the same inbox as `inbox` (same Redis server and key prefix):
   * then the registration and the unread count are one round trip.
   */
  unreadInRegistry: boolean;
  logger: Logger;
  metrics: GatewayMetrics;
}

/** A socket the handshake let in: registered in the cluster, with what `session:ready` says. */
export interface Admission {
  cameOnline: boolean;
  /** Someone in the cluster watches the user (worth announcing its arrival). */
  watched: boolean;
  status: PresenceStatus;
  unread: number;
}

/**
 * Admits a socket: origin, handshake rate, token (or guest), then its registration in the cluster,
 * where the connections-per-user limit is decided in the same step, so a client over the limit
 * gets `connect_error CONNECTION_LIMIT` and never a session. A refusal reaches the client as
 * `connect_error` with `message` = code and `data` = `{ code, message }`.
 */
export function createHandshake(deps: HandshakeDeps) {
  const { config, verifier, pod, inbox, logger, metrics } = deps;
  const handshakes = new KeyedBuckets(config.limits.handshakeRatePerSec, config.limits.handshakeRatePerSec * 2);

  const refuse = (code: HandshakeError['code'], message: string) => {
    metrics.connectionsTotal.inc({ result: code.toLowerCase() });
    return new HandshakeError(code, message);
  };

  async function identify(socket: GatewaySocket): Promise<HandshakeError | SocketData> {
    const { origin, host } = socket.handshake.headers;
    if (!originAllowed(origin, host, config.corsOrigins)) {
      return refuse('ORIGIN_FORBIDDEN', 'Origin not allowed');
    }
    if (!handshakes.take(clientAddress(socket.handshake, config.trustProxy))) {
      return refuse('RATE_LIMITED', 'Too many connection attempts');
    }
    const found = findToken(socket, config);
    if (!found) {
      if (!config.allowGuests) return refuse('AUTH_REQUIRED', 'Access token required');
      return {
        userId: `guest:${randomBytes(9).toString('base64url')}`,
        roles: [],
        rooms: [],
        guest: true,
        connectedAt: Date.now(),
      };
    }
    let claims;
    try {
      claims = await verifier.verifyAccess(found.token);
    } catch (err) {
      if (err instanceof AuthError) {
        logger.debug({ code: err.code, source: found.source }, 'handshake refused');
        return refuse(err.code, err.message);
      }
      throw err;
    }
    return {
      userId: claims.sub,
      ...(claims.name ? { name: claims.name } : {}),
      roles: claims.roles,
      rooms: claims.rooms,
      guest: false,
      exp: claims.exp,
      connectedAt: Date.now(),
    };
  }

  /** Resolves with the admission or the refusal; rejects when Redis cannot be reached. */
  async function admit(socket: GatewaySocket): Promise<HandshakeError | Admission> {
    const identity = await identify(socket);
    if (identity instanceof HandshakeError) return identity;
    socket.data = identity;
    const ref = { socketId: socket.id, userId: identity.userId, guest: identity.guest };
    const registering = { ...ref, ...(identity.name ? { name: identity.name } : {}), maxConnections: config.limits.maxConnectionsPerUser };
    if (deps.unreadInRegistry && pod.countsUnread && !identity.guest) {
      // one round trip: the limit, the registration and the unread count in one script
      const r = await pod.connect({ ...registering, countUnread: true });
      if (!r.accepted || r.unread !== undefined) return admitted(identity, r, r.accepted ? r.unread ?? 0 : 0);
    }
    const [registration, unread] = await Promise.allSettled([
      pod.connect(registering),
      identity.guest ? 0 : inbox.unread(identity.userId),
    ]);
    if (registration.status === 'rejected') throw registration.reason;
    const r = registration.value;
    if (r.accepted && unread.status === 'rejected') {
      await pod.disconnect(ref, []).catch((err: unknown) => logger.warn({ err }, 'undoing a registration failed'));
      throw unread.reason;
    }
    return admitted(identity, r, unread.status === 'fulfilled' ? unread.value : 0);
  }

  function admitted(identity: SocketData, r: ConnectResult, unread: number): HandshakeError | Admission {
    if (!r.accepted) {
      if (r.reason === 'limit') {
        return refuse('CONNECTION_LIMIT', `At most ${config.limits.maxConnectionsPerUser} connections per user`);
      }
      // this instance is not in the registry right now (it was taken for dead): retry, elsewhere or later
      metrics.connectionsTotal.inc({ result: 'error' });
      return new HandshakeError('RATE_LIMITED', 'Temporarily unavailable, retry later');
    }
    identity.connectedAt = r.now;
    return { cameOnline: r.cameOnline, watched: r.watched, status: r.status, unread };
  }

  return {
    /**
     * Calls `onAdmitted` before `next()`, so the pod knows the socket before Socket.IO connects
     * it. A failure that is not the client's (Redis unreachable) is refused as "retry later".
     */
    middleware(socket: GatewaySocket, next: (err?: Error) => void, onAdmitted: (admission: Admission) => void): void {
      admit(socket).then(
        (result) => {
          if (result instanceof HandshakeError) return next(result);
          onAdmitted(result);
          next();
        },
        (err: unknown) => {
          logger.error({ err }, 'handshake failed');
          metrics.connectionsTotal.inc({ result: 'error' });
          next(new HandshakeError('RATE_LIMITED', 'Temporarily unavailable, retry later'));
        },
      );
    },
    close: () => handshakes.close(),
  };
}
