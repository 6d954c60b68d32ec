import { createVerifier as createHmacVerifier, TokenError, type Algorithm } from 'fast-jwt';
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
  const verifySigned =
    material.kind === 'secret'
      ? hmacVerifier(material.key, material.algorithms, options, clockTolerance)
      : joseVerifier(
          material.kind === 'jwks' ? new JwksRegistry().register(material.url, options.issuer) : () => material.key,
          material.algorithms,
          options,
          clockTolerance,
        );

  async function verify(token: unknown, kind: TokenKind): Promise<JWTPayload> {
    if (token === undefined || token === null || token === '') {
      throw failure(kind, kind === 'access' ? 'AUTH_REQUIRED' : 'AUTH_INVALID');
    }
    if (typeof token !== 'string' || token.length > MAX_TOKEN_LENGTH) throw failure(kind, 'AUTH_INVALID');
    try {
      return await verifySigned(token);
    } catch (err) {
      const signed = err instanceof SignedTokenError ? err : new SignedTokenError(false, err);
      throw failure(kind, signed.expired ? 'AUTH_EXPIRED' : 'AUTH_INVALID', signed.cause);
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

/** Public keys and JWKS: jose, which also fetches, caches and rotates the JWKS. */
function joseVerifier(
  getKey: JWTVerifyGetKey,
  algorithms: string[],
  options: VerifierOptions,
  clockToleranceSec: number,
): (token: string) => Promise<JWTPayload> {
  const verifyOptions: JWTVerifyOptions = {
    algorithms,
    clockTolerance: clockToleranceSec,
    requiredClaims: ['exp', 'sub'],
    ...(options.issuer === undefined ? {} : { issuer: options.issuer }),
    ...(options.audience === undefined ? {} : { audience: options.audience }),
  };
  return async (token) => {
    try {
      return (await jwtVerify(token, getKey, verifyOptions)).payload;
    } catch (cause) {
      throw new SignedTokenError(cause instanceof errors.JWTExpired, cause);
    }
  };
}

/** Why a signed token was refused: `expired` only for an authentic token past its `exp`. */
class SignedTokenError extends Error {
  constructor(
    readonly expired: boolean,
    cause: unknown,
  ) {
    super('token refused', { cause });
  }
}

/**
 * HS* tokens are verified with fast-jwt: synchronously with `node:crypto`'s HMAC, about a fifth of
 * the CPU of jose's WebCrypto `verify` (a promise and a thread-pool job per token), on the path every
 * handshake takes. The same checks as jose's: the algorithm allow-list first, the signature before
 * any claim, `crit` headers refused unless understood (none are), `exp` and `sub` required, `exp` /
 * `nbf` numbers within the leeway, `iss` and `aud` exact (`aud` may be a list); no cache of verified
 * tokens.
 */
function hmacVerifier(
  secret: Uint8Array,
  algorithms: string[],
  options: VerifierOptions,
  clockToleranceSec: number,
): (token: string) => Promise<JWTPayload> {
  const verifyHmac = createHmacVerifier({
    key: Buffer.from(secret),
    algorithms: algorithms as Algorithm[], // HS256, HS384 or HS512: resolveAlgorithms allows no other with a secret
    // fast-jwt checks iss / aud only when present: a configured one is also required
    requiredClaims: ['exp', 'sub', ...(options.issuer === undefined ? [] : ['iss']), ...(options.audience === undefined ? [] : ['aud'])],
    clockTolerance: clockToleranceSec * 1000,
    cache: false,
    ...(options.issuer === undefined ? {} : { allowedIss: options.issuer }),
    ...(options.audience === undefined ? {} : { allowedAud: options.audience }),
  });
  return async (token) => {
    let payload: unknown;
    try {
      payload = verifyHmac(token) as unknown;
    } catch (cause) {
      throw new SignedTokenError(cause instanceof TokenError && cause.code === TokenError.codes.expired, cause);
    }
    // fast-jwt checks the type of `iat` only with maxAge; jose always did
    const iat = (payload as JWTPayload).iat;
    if (iat !== undefined && typeof iat !== 'number') throw new SignedTokenError(false, new TypeError('iat must be a number'));
    return payload as JWTPayload;
  };
}

function failure(kind: TokenKind, code: AuthErrorCode, cause?: unknown): AuthError {
  return new AuthError(code, MESSAGES[kind][code], cause === undefined ? undefined : { cause });
}
