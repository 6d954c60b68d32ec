/** The type of a configured PEM public key. */
export type PublicKeyKind = 'rsa' | 'ec-p256' | 'ec-p384' | 'ec-p521' | 'ed25519';

/** The kind of key material a verifier holds; it decides which JWS algorithms may be used. */
export type KeyKind = 'secret' | PublicKeyKind | 'jwks';

const HMAC = ['HS256', 'HS384', 'HS512'];
const RSA = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512'];
const EDDSA = ['EdDSA', 'Ed25519'];

const ALLOWED: Record<KeyKind, readonly string[]> = {
  secret: HMAC,
  rsa: RSA,
  'ec-p256': ['ES256'],
  'ec-p384': ['ES384'],
  'ec-p521': ['ES512'],
  ed25519: EDDSA,
  jwks: [...RSA, 'ES256', 'ES384', 'ES512', ...EDDSA],
};

const DEFAULTS: Record<KeyKind, readonly string[]> = {
  secret: ['HS256'],
  rsa: ['RS256'],
  'ec-p256': ['ES256'],
  'ec-p384': ['ES384'],
  'ec-p521': ['ES512'],
  ed25519: ['EdDSA'],
  jwks: ['RS256', 'ES256', 'ES384', 'EdDSA'],
};

/** RFC 7518 §3.2: an HMAC key must be at least as long as the hash output. */
const HMAC_MIN_BYTES: Record<string, number> = { HS256: 32, HS384: 48, HS512: 64 };

/**
 * The algorithm allow-list for a key: `configured` (JWT_ALGORITHMS) after checking that every entry
 * fits the key, or the key's default family when nothing is configured.
 *
 * Defaults: `HS256` for a secret; `RS256` for an RSA key; `ES256` / `ES384` / `ES512` for an EC
 * key on P-256 / P-384 / P-521; `EdDSA` for an Ed25519 key; `RS256, ES256, ES384, EdDSA` for a
 * JWKS (each JWKS key is still only used with an algorithm matching its own type).
 *
 * @throws Error naming JWT_ALGORITHMS when the list is empty, contains `none` or an unknown name,
 *   mixes HS* with an asymmetric key (algorithm confusion), or names an algorithm the key cannot use.
 */
export function resolveAlgorithms(kind: KeyKind, configured: readonly string[] | undefined): string[] {
  if (configured === undefined) return [...DEFAULTS[kind]];
  if (configured.length === 0) throw new Error('JWT_ALGORITHMS must name at least one algorithm');
  for (const alg of configured) {
    if (alg.toLowerCase() === 'none') throw new Error('JWT_ALGORITHMS must not contain "none"');
    if (HMAC.includes(alg) && kind !== 'secret') {
      throw new Error(`JWT_ALGORITHMS: ${alg} needs JWT_SECRET; it cannot be mixed with a public key or JWKS`);
    }
    if (!ALLOWED[kind].includes(alg)) {
      throw new Error(`JWT_ALGORITHMS: ${alg} is not usable with this key (allowed: ${ALLOWED[kind].join(', ')})`);
    }
  }
  return [...new Set(configured)];
}

/** The shortest secret, in bytes, that every HMAC algorithm in `algorithms` accepts. */
export function minSecretBytes(algorithms: readonly string[]): number {
  return Math.max(32, ...algorithms.map((alg) => HMAC_MIN_BYTES[alg] ?? 0));
}
