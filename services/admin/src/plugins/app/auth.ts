import type { FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import { AuthError, type TokenVerifier } from '@switchboard/auth';
import { bearerCredential } from '../../api-keys.js';
import { AdminError, REALM, unauthorized } from '../../errors.js';
import { isUnsafeMethod } from './console-sessions.js';

/** Who made an authenticated request: which API key (by position, never its value), or which user. */
export type AdminPrincipal = { kind: 'api-key'; key: number } | { kind: 'token'; sub: string };

/** A credential that is an admin's. */
export interface VerifiedCredential {
  principal: AdminPrincipal;
  /** When the credential stops being valid (an access token's `exp`), ms since the epoch. */
  expiresAt?: number;
}

declare module 'fastify' {
  interface FastifyInstance {
    /**
     * `onRequest` hook of the `/v1` routes: `Authorization: Bearer`, or else the console's
     * session cookie (with the CSRF checks on state-changing methods). 401 without valid
     * credentials, 403 without the admin role or on a cross-site request.
     */
    authenticate(request: FastifyRequest): Promise<void>;
    /** Checks an admin API key or admin access token; throws the 401 or 403 the API answers. */
    verifyAdminCredential(credential: string, request: FastifyRequest): Promise<VerifiedCredential>;
  }
  interface FastifyRequest {
    /** Set by `authenticate`. */
    principal: AdminPrincipal | null;
  }
}

export interface AuthOptions {
  /** Index of the admin API key a credential is, or -1 (constant time). */
  matchApiKey: (credential: string) => number;
  /** Verifies access tokens; without it only API keys are accepted. */
  verifier?: TokenVerifier;
}

export const ADMIN_ROLE = 'admin';

/** A principal as it may be logged. */
export function describePrincipal(principal: AdminPrincipal | null): string {
  if (!principal) return 'anonymous';
  return principal.kind === 'api-key' ? `api-key#${principal.key}` : `token:${principal.sub}`;
}

/**
 * Bearer auth (SPEC §7): an admin API key, or an access token whose `roles` include `admin`;
 * or, from the operator console, its session cookie. Credentials are never logged; a refusal
 * is logged with its reason only.
 */
export default fp<AuthOptions>(
  async (app, { matchApiKey, verifier }) => {
    app.decorateRequest('principal', null);

    async function verifyAdminCredential(credential: string, request: FastifyRequest): Promise<VerifiedCredential> {
      const key = matchApiKey(credential);
      if (key >= 0) return { principal: { kind: 'api-key', key } };
      if (!verifier) {
        request.log.warn({ reason: 'unknown key' }, 'admin authentication failed');
        throw unauthorized('Invalid credentials', true);
      }
      let claims;
      try {
        claims = await verifier.verifyAccess(credential);
      } catch (err) {
        if (!(err instanceof AuthError)) throw err;
        request.log.warn({ reason: err.code }, 'admin authentication failed');
        throw unauthorized(err.code === 'AUTH_EXPIRED' ? 'Access token expired' : 'Invalid credentials', true);
      }
      if (!claims.roles.includes(ADMIN_ROLE)) {
        request.log.warn({ reason: 'not admin', sub: claims.sub }, 'admin authorization failed');
        throw new AdminError('FORBIDDEN', `The "${ADMIN_ROLE}" role is required`, undefined, {
          'www-authenticate': `${REALM}, error="insufficient_scope"`,
        });
      }
      return { principal: { kind: 'token', sub: claims.sub }, expiresAt: claims.exp * 1000 };
    }
    app.decorate('verifyAdminCredential', verifyAdminCredential);

    app.decorate('authenticate', async (request: FastifyRequest) => {
      const header = request.headers.authorization;
      if (header === undefined && app.consoleSessions.hasCookie(request)) {
        const session = await app.consoleSessions.find(request);
        if (!session) {
          request.log.info({ reason: 'console session unknown or expired' }, 'admin authentication failed');
          throw unauthorized('Console session expired or signed out: sign in again', true);
        }
        if (isUnsafeMethod(request.method)) {
          try {
            app.consoleSessions.assertCsrf(request, session);
          } catch (err) {
            request.log.warn({ reason: 'csrf', principal: describePrincipal(session.principal) }, 'admin request refused');
            throw err;
          }
        }
        request.principal = session.principal;
        request.consoleSession = session;
        return;
      }
      const credential = bearerCredential(header);
      if (credential === undefined) {
        request.log.info({ reason: 'missing' }, 'admin authentication failed');
        throw unauthorized('Bearer credentials required', false);
      }
      request.principal = (await verifyAdminCredential(credential, request)).principal;
    });
  },
  { name: 'auth', dependencies: ['console-sessions'] },
);
