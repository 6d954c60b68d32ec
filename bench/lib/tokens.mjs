// Access tokens for bench clients: HS256 JWTs with `sub` = user id (SPEC §2).
import { SignJWT } from 'jose';

export async function mintToken(secret, userId, ttlSeconds = 3600) {
  return new SignJWT({})
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setSubject(userId)
    .setIssuedAt()
    .setExpirationTime(Math.floor(Date.now() / 1000) + ttlSeconds)
    .sign(new TextEncoder().encode(secret));
}
