import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { Type, type Static } from '@sinclair/typebox';
import { TypeCompiler } from '@sinclair/typebox/compiler';
import type { FastifyReply, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import { keys } from '@switchboard/store';
import { AdminError, unauthorized } from '../../errors.js';
import type { AdminPrincipal } from './auth.js';

/** The cookie holding a console session id: opaque, HttpOnly, SameSite=Strict. */
export const SESSION_COOKIE = 'sb_console';
/** The header carrying the session's CSRF token on the console's state-changing calls. */
export const CSRF_HEADER = 'x-csrf-token';

/** A signed-in console session, as the server holds it. */
export interface ConsoleSession {
  principal: AdminPrincipal;
  /** Sent back in `X-CSRF-Token` by the console on every state-changing call. */
  csrfToken: string;
  /** ms since the epoch. */
  expiresAt: number;
  /** SHA-256 (hex) of the session id: the Redis key's suffix. */
  digest: string;
}

export interface NewSession {
  /** The cookie value. Never logged, never stored. */
  id: string;
  session: ConsoleSession;
}

export interface ConsoleSessions {
  /** Stores a session for a verified principal; `credentialExpiresAt` (ms) bounds it further. */
  create(principal: AdminPrincipal, credentialExpiresAt?: number): Promise<NewSession>;
  /** The valid session the request's cookie names, or null; looked up once per request. */
  find(request: FastifyRequest): Promise<ConsoleSession | null>;
  /** Whether the request carries a session cookie at all (valid or not). */
  hasCookie(request: FastifyRequest): boolean;
  destroy(session: ConsoleSession): Promise<void>;
  setCookie(request: FastifyRequest, reply: FastifyReply, created: NewSession): void;
  clearCookie(request: FastifyRequest, reply: FastifyReply): void;
  /**
   * CSRF defence for a browser request: its `Origin` must name this service (same host and
   * port as the request's `Host`). Throws `FORBIDDEN` otherwise.
   */
  assertSameOrigin(request: FastifyRequest): void;
  /** `assertSameOrigin`, and the `X-CSRF-Token` header must be the session's token. */
  assertCsrf(request: FastifyRequest, session: ConsoleSession): void;
}

declare module 'fastify' {
  interface FastifyInstance {
    /** Operator console sign-ins, kept in Redis under `<KEY_PREFIX>:console:`. */
    consoleSessions: ConsoleSessions;
  }
  interface FastifyRequest {
    /** Set by `authenticate` when the request was authenticated by the console's session cookie. */
    consoleSession: ConsoleSession | null;
  }
}

export interface ConsoleSessionsOptions {
  keyPrefix: string;
  /** The admin API keys, in configuration order: a key's session ends when the key is removed. */
  apiKeys: readonly string[];
  /** Longest a session lives. */
  ttlSec: number;
}

const StoredSession = Type.Object({
  v: Type.Literal(1),
  principal: Type.Union([
    Type.Object({ kind: Type.Literal('api-key'), key: Type.Integer({ minimum: 0 }) }),
    Type.Object({ kind: Type.Literal('token'), sub: Type.String() }),
  ]),
  csrf: Type.String({ minLength: 1 }),
  expiresAt: Type.Integer(),
  /** For API-key sessions: HMAC of the digest with the key, so a session dies with its key. */
  keyCheck: Type.Optional(Type.String()),
});
type StoredSession = Static<typeof StoredSession>;
const checkStored = TypeCompiler.Compile(StoredSession);

/** 32 random bytes in base64url. */
const SESSION_ID = /^[A-Za-z0-9_-]{43}$/;
const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

const sha256 = (value: string) => createHash('sha256').update(value, 'utf8').digest('hex');
const randomToken = () => randomBytes(32).toString('base64url');

function sameSecret(a: string, b: string): boolean {
  // Digests first: equal lengths for timingSafeEqual, and no early exit on the length.
  return timingSafeEqual(createHash('sha256').update(a).digest(), createHash('sha256').update(b).digest());
}

const forbidden = (message: string) => new AdminError('FORBIDDEN', message);

/** Whether a request method can change state (and so needs the CSRF checks). */
export function isUnsafeMethod(method: string): boolean {
  return !SAFE_METHODS.has(method);
}

/**
 * Console sessions: the cookie holds a random id; Redis holds the session under the id's
 * SHA-256, with a TTL, so neither the cookie nor Redis ever holds the API key or token the
 * operator signed in with. Every admin replica reads the same sessions.
 */
export default fp<ConsoleSessionsOptions>(
  async (app, { keyPrefix, apiKeys, ttlSec }) => {
    const k = keys(keyPrefix);
    const lookups = new WeakMap<FastifyRequest, Promise<ConsoleSession | null>>();
    const keyCheck = (key: number, digest: string) =>
      createHmac('sha256', apiKeys[key] ?? '').update(`console-session:${digest}`).digest('hex');

    async function create(principal: AdminPrincipal, credentialExpiresAt?: number): Promise<NewSession> {
      const now = Date.now();
      const expiresAt = Math.min(now + ttlSec * 1000, credentialExpiresAt ?? Number.POSITIVE_INFINITY);
      if (expiresAt <= now) throw unauthorized('Access token expired', true);
      const id = randomToken();
      const digest = sha256(id);
      const stored: StoredSession = {
        v: 1,
        principal,
        csrf: randomToken(),
        expiresAt,
        ...(principal.kind === 'api-key' ? { keyCheck: keyCheck(principal.key, digest) } : {}),
      };
      await app.redis.set(k.consoleSession(digest), JSON.stringify(stored), 'PX', expiresAt - now);
      return { id, session: { principal, csrfToken: stored.csrf, expiresAt, digest } };
    }

    function keyStillValid({ principal, keyCheck: check }: StoredSession, digest: string): boolean {
      if (principal.kind !== 'api-key') return true;
      return principal.key < apiKeys.length && sameSecret(check ?? '', keyCheck(principal.key, digest));
    }

    async function lookup(id: string): Promise<ConsoleSession | null> {
      const digest = sha256(id);
      const raw = await app.redis.get(k.consoleSession(digest));
      if (raw === null) return null;
      let stored: unknown;
      try {
        stored = JSON.parse(raw);
      } catch {
        stored = undefined;
      }
      if (!checkStored.Check(stored) || stored.expiresAt <= Date.now() || !keyStillValid(stored, digest)) {
        // Expired, unreadable, or its API key is gone from ADMIN_API_KEYS.
        await app.redis.del(k.consoleSession(digest));
        return null;
      }
      return { principal: stored.principal, csrfToken: stored.csrf, expiresAt: stored.expiresAt, digest };
    }

    const cookieOf = (request: FastifyRequest): string | undefined => request.cookies[SESSION_COOKIE];

    function find(request: FastifyRequest): Promise<ConsoleSession | null> {
      let found = lookups.get(request);
      if (!found) {
        const id = cookieOf(request);
        found = id !== undefined && SESSION_ID.test(id) ? lookup(id) : Promise.resolve(null);
        lookups.set(request, found);
      }
      return found;
    }

    // Secure whenever the browser reached us over HTTPS, directly or through a TLS proxy: the
    // header can only make the cookie stricter, so it need not be trusted.
    const secure = (request: FastifyRequest) => request.protocol === 'https' || request.headers['x-forwarded-proto'] === 'https';

    function assertSameOrigin(request: FastifyRequest): void {
      const origin = request.headers.origin;
      if (origin === undefined) throw forbidden('Cross-site request refused: no Origin header');
      let host: string;
      try {
        host = new URL(origin).host;
      } catch {
        throw forbidden('Cross-site request refused: invalid Origin header');
      }
      if (host === '' || host.toLowerCase() !== request.host.toLowerCase()) {
        throw forbidden('Cross-site request refused: the Origin is not this console');
      }
    }

    const sessions: ConsoleSessions = {
      create,
      find,
      hasCookie: (request) => cookieOf(request) !== undefined,
      destroy: async (session) => {
        await app.redis.del(k.consoleSession(session.digest));
      },
      setCookie: (request, reply, { id, session }) => {
        reply.setCookie(SESSION_COOKIE, id, {
          path: '/',
          httpOnly: true,
          sameSite: 'strict',
          secure: secure(request),
          maxAge: Math.max(1, Math.floor((session.expiresAt - Date.now()) / 1000)),
        });
      },
      clearCookie: (request, reply) => {
        reply.clearCookie(SESSION_COOKIE, { path: '/', httpOnly: true, sameSite: 'strict', secure: secure(request) });
      },
      assertSameOrigin,
      assertCsrf: (request, session) => {
        assertSameOrigin(request);
        const token = request.headers[CSRF_HEADER];
        if (typeof token !== 'string' || !sameSecret(token, session.csrfToken)) {
          throw forbidden(`Cross-site request refused: missing or wrong ${CSRF_HEADER} header`);
        }
      },
    };
    app.decorate('consoleSessions', sessions);
    app.decorateRequest('consoleSession', null);
  },
  { name: 'console-sessions', dependencies: ['store', 'cookie'] },
);
