import type { FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import { AuthError, type TokenVerifier } from '@switchboard/auth';
import { bearerCredential } from '../../api-keys.js';
import { AdminError } from '../../errors.js';

/** Who made an authenticated request: which API key (by position, never its value), or which user. */
export type AdminPrincipal = { kind: 'api-key'; key: number } | { kind: 'token'; sub: string };

declare module 'fastify' {
  interface FastifyInstance {
    /** `onRequest` hook of the `/v1` routes: 401 without valid credentials, 403 without the admin role. */
    authenticate(request: FastifyRequest): Promise<void>;
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
const REALM = 'Bearer realm="switchboard-admin"';

function unauthorized(message: string, invalidToken: boolean): AdminError {
  return new AdminError('UNAUTHORIZED', message, undefined, {
    'www-authenticate': invalidToken ? `${REALM}, error="invalid_token"` : REALM,
  });
}

/** A principal as it may be logged. */
export function describePrincipal(principal: AdminPrincipal | null): string {
  if (!principal) return 'anonymous';
  return principal.kind === 'api-key' ? `api-key#${principal.key}` : `token:${principal.sub}`;
}

/**
 * Bearer auth (SPEC §7): an admin API key, or an access token whose `roles` include `admin`.
 * Credentials are never logged; a refusal is logged with its reason only.
 */
export default fp<AuthOptions>(
  async (app, { matchApiKey, verifier }) => {
    app.decorateRequest('principal', null);

    app.decorate('authenticate', async (request: FastifyRequest) => {
      const credential = bearerCredential(request.headers.authorization);
      if (credential === undefined) {
        request.log.info({ reason: 'missing' }, 'admin authentication failed');
        throw unauthorized('Bearer credentials required', false);
      }
      const key = matchApiKey(credential);
      if (key >= 0) {
        request.principal = { kind: 'api-key', key };
        return;
      }
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
      request.principal = { kind: 'token', sub: claims.sub };
    });
  },
  { name: 'auth' },
);
