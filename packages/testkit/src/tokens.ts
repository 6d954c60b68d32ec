import { SignJWT } from 'jose';

/** The HS256 secret test clusters use unless told otherwise (≥ 32 bytes). */
export const TEST_JWT_SECRET = 'switchboard-test-secret-0123456789abcdef';

export interface TokenClaims {
  sub: string;
  name?: string;
  roles?: string[];
  rooms?: string[];
  /** Lifetime in seconds from now; negative for an expired token. @default 3600 */
  expiresIn?: number;
  /** `nbf` in seconds from now. */
  notBefore?: number;
  issuer?: string;
  audience?: string;
  /** Extra claims, e.g. `room` for room tokens. */
  extra?: Record<string, unknown>;
}

/** Mints an HS256 access token (or, with `extra.room`, a room token). */
export async function mintToken(claims: TokenClaims, secret: string = TEST_JWT_SECRET): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  const payload: Record<string, unknown> = { ...claims.extra };
  if (claims.name !== undefined) payload.name = claims.name;
  if (claims.roles !== undefined) payload.roles = claims.roles;
  if (claims.rooms !== undefined) payload.rooms = claims.rooms;
  let jwt = new SignJWT(payload)
    .setProtectedHeader({ alg: 'HS256' })
    .setSubject(claims.sub)
    .setIssuedAt(now)
    .setExpirationTime(now + (claims.expiresIn ?? 3600));
  if (claims.notBefore !== undefined) jwt = jwt.setNotBefore(now + claims.notBefore);
  if (claims.issuer) jwt = jwt.setIssuer(claims.issuer);
  if (claims.audience) jwt = jwt.setAudience(claims.audience);
  return jwt.sign(new TextEncoder().encode(secret));
}

/** A room token for a `private:` room: `sub` = the user, `room` = the exact room. */
export function mintRoomToken(userId: string, room: string, expiresIn = 300, secret: string = TEST_JWT_SECRET): Promise<string> {
  return mintToken({ sub: userId, expiresIn, extra: { room } }, secret);
}
