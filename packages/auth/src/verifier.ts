import { webcrypto } from 'node:crypto';
import { errors, jwtVerify, type JWTPayload, type JWTVerifyGetKey, type JWTVerifyOptions } from 'jose';
import { AuthError, type AuthErrorCode } from './auth-error.js';
import { isRoomTokenFor, toAccessClaims, type AccessClaims } from './claims.js';
import { JwksRegistry } from './jwks.js';
import { loadKeyMaterial } from './key-material.js';

export interface VerifierOptions {
  /**
   * HS* shared secret (JWT_SECRET). At least 32 bytes: HS256 needs a 256-bit key (48 bytes for
   * HS384, 64 for HS512). Exactly one of `secret`, `publicKey`, `jwksUrl` must be set.
   */
  secret?: string;
  /** PEM public key (JWT_PUBLIC_KEY): SPKI `PUBLIC KEY`, PKCS#1 `RSA PUBLIC KEY`, or an X.509 `CERTIFICATE`. */
  publicKey?: string;
  /**
   * JWKS URL (JWT_JWKS_URL); the key set is fetched on first use and cached. `https://`, or
   * plain `http://` on a loopback host only (localhost, 127.0.0.0/8, ::1).
   */
  jwksUrl?: string;
  /**
   * Algorithm allow-list (JWT_ALGORITHMS). HS* only with `secret`; `none` is never allowed.
   * @default the key's family: `['HS256']` for a secret; `['RS256']` for an RSA key;
   *   `['ES256']` / `['ES384']` / `['ES512']` for an EC key on P-256 / P-384 / P-521;
   *   `['EdDSA']` for an Ed25519 key; `['RS256', 'ES256', 'ES384', 'EdDSA']` for a JWKS.
   */
  algorithms?: string[];
  /** Required `iss` (JWT_ISSUER). @default undefined (not checked) */
  issuer?: string;
  /** Required `aud` (JWT_AUDIENCE). @default undefined (not checked) */
  audience?: string;
  /** Leeway for `exp` / `nbf`, in seconds (JWT_CLOCK_TOLERANCE_SEC). @default 5 */
  clockToleranceSec?: number;
}

export interface TokenVerifier {
  /**
   * Verifies an access token. Rejects with {@link AuthError}: `AUTH_REQUIRED` without a token,
   * `AUTH_EXPIRED` for an authentic but expired token, `AUTH_INVALID` otherwise.
   */
  verifyAccess(token: string | undefined | null): Promise<AccessClaims>;
  /**
   * Verifies a room token: signed with the same key, the same `iss` / `aud` checks, `exp`
   * required, `sub` = `expected.userId` and `room` = exactly `expected.room`. Rejects with
   * {@link AuthError} `AUTH_EXPIRED` or `AUTH_INVALID` (also for a missing token).
   */
  verifyRoomToken(token: string | undefined, expected: { userId: string; room: string }): Promise<void>;
}

/** Longer tokens are refused unparsed. */
const MAX_TOKEN_LENGTH = 16_384;

/** Fixed, client-safe messages: a token or its claims never appear in one. */
const MESSAGES = {
  access: {
    AUTH_REQUIRED: 'Access token required',
    AUTH_INVALID: 'Access token invalid',
    AUTH_EXPIRED: 'Access token expired',
  },
  room: {
    AUTH_REQUIRED: 'Room token required',
    AUTH_INVALID: 'Room token invalid',
    AUTH_EXPIRED: 'Room token expired',
  },
} satisfies Record<string, Record<AuthErrorCode, string>>;

type TokenKind = keyof typeof MESSAGES;

/**
 * Creates a verifier from one of a shared secret, a PEM public key or a JWKS URL. All key and
 * algorithm checks happen here, so a bad configuration fails at startup.
 * @throws Error for an invalid configuration: not exactly one key source, a secret shorter than
 *   32 bytes, an unusable PEM, a JWKS URL that is neither https:// nor http:// on a loopback
 *   host, or a JWT_ALGORITHMS list that is empty, contains `none`, mixes HS* with a public key /
 *   JWKS, or does not fit the key.
 */
export function createVerifier(options: VerifierOptions): TokenVerifier {
  const material = loadKeyMaterial(options);
  const clockTolerance = options.clockToleranceSec ?? 5;
  if (!Number.isFinite(clockTolerance) || clockTolerance < 0) {
    throw new Error('JWT_CLOCK_TOLERANCE_SEC must be a non-negative number');
  }
  const getKey: JWTVerifyGetKey =
    material.kind === 'jwks'
      ? new JwksRegistry().register(material.url, options.issuer)
      : material.kind === 'secret'
        ? hmacKeys(material.key)
        : () => material.key;
  const verifyOptions: JWTVerifyOptions = {
    algorithms: material.algorithms,
    clockTolerance,
    requiredClaims: ['exp', 'sub'],
    ...(options.issuer === undefined ? {} : { issuer: options.issuer }),
    ...(options.audience === undefined ? {} : { audience: options.audience }),
  };

  async function verify(token: unknown, kind: TokenKind): Promise<JWTPayload> {
    if (token === undefined || token === null || token === '') {
      throw failure(kind, kind === 'access' ? 'AUTH_REQUIRED' : 'AUTH_INVALID');
    }
    if (typeof token !== 'string' || token.length > MAX_TOKEN_LENGTH) throw failure(kind, 'AUTH_INVALID');
    try {
      return (await jwtVerify(token, getKey, verifyOptions)).payload;
    } catch (cause) {
      throw failure(kind, cause instanceof errors.JWTExpired ? 'AUTH_EXPIRED' : 'AUTH_INVALID', cause);
    }
  }

  return {
    async verifyAccess(token) {
      const claims = toAccessClaims(await verify(token, 'access'));
      if (claims === undefined) throw failure('access', 'AUTH_INVALID');
      return claims;
    },
    async verifyRoomToken(token, expected) {
      if (!isRoomTokenFor(await verify(token, 'room'), expected)) throw failure('room', 'AUTH_INVALID');
    },
  };
}

/**
 * The shared secret as a WebCrypto key per HS* algorithm, imported once: given the raw bytes, jose
 * imports them again for every token it verifies. Any other algorithm gets the raw bytes, which
 * jose refuses as it did before (the allow-list is checked before the key is asked for).
 */
function hmacKeys(secret: Uint8Array): JWTVerifyGetKey {
  const imported = new Map<string, Promise<webcrypto.CryptoKey>>();
  return ({ alg }) => {
    const hash = HMAC_HASHES[alg];
    if (hash === undefined) return secret;
    let key = imported.get(alg);
    if (!key) {
      key = webcrypto.subtle.importKey('raw', secret, { name: 'HMAC', hash }, false, ['verify']);
      imported.set(alg, key);
    }
    return key;
  };
}

const HMAC_HASHES: Readonly<Record<string, string>> = { HS256: 'SHA-256', HS384: 'SHA-384', HS512: 'SHA-512' };

function failure(kind: TokenKind, code: AuthErrorCode, cause?: unknown): AuthError {
  return new AuthError(code, MESSAGES[kind][code], cause === undefined ? undefined : { cause });
}
