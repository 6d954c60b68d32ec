import { base64url, createRemoteJWKSet, type FlattenedJWSInput, type JWTVerifyGetKey } from 'jose';
import { AuthError } from './auth-error.js';

/** Fetch timeout, refetch cooldown for unknown `kid`s, and maximum age of a fetched key set. */
const REMOTE_OPTIONS = { timeoutDuration: 5_000, cooldownDuration: 30_000, cacheMaxAge: 600_000 };

/**
 * Remote key sets, one per issuer (keyed by the URL when no issuer is configured). Each set is
 * created once and reused, so its keys are cached between verifications. A token is only ever
 * checked against the set of its own issuer: a `kid` never selects another issuer's key.
 */
export class JwksRegistry {
  readonly #sets = new Map<string, { url: string; getKey: JWTVerifyGetKey }>();

  /**
   * Registers the key set at `url` for `issuer` and returns its key resolver. With an issuer, a
   * token whose `iss` differs is refused before any key lookup or fetch.
   * @throws Error when `issuer` is already bound to another URL.
   */
  register(url: URL, issuer: string | undefined): JWTVerifyGetKey {
    const id = issuer ?? url.href;
    let entry = this.#sets.get(id);
    if (entry === undefined) {
      entry = { url: url.href, getKey: createRemoteJWKSet(url, REMOTE_OPTIONS) };
      this.#sets.set(id, entry);
    } else if (entry.url !== url.href) {
      throw new Error(`JWT_JWKS_URL: issuer ${id} already uses ${entry.url}`);
    }
    const { getKey } = entry;
    return (header, token) => {
      if (issuer !== undefined && issuerOf(token) !== issuer) {
        throw new AuthError('AUTH_INVALID', 'Token issuer not accepted');
      }
      return getKey(header, token);
    };
  }
}

/** The unverified `iss` of a token; only used to pick (or refuse) a key set. */
function issuerOf(token: FlattenedJWSInput): unknown {
  if (typeof token.payload !== 'string') return undefined;
  const claims: unknown = JSON.parse(new TextDecoder().decode(base64url.decode(token.payload)));
  return typeof claims === 'object' && claims !== null && 'iss' in claims ? claims.iss : undefined;
}
