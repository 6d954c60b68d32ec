import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';

/** A fresh key prefix, so tests sharing one Redis never meet. */
export function randomKeyPrefix(): string {
  return `t${randomUUID().slice(0, 8)}`;
}

/** Deletes every key under `<prefix>:` (bounded scan). */
export async function deleteKeys(redis: Redis, prefix: string): Promise<void> {
  let cursor = '0';
  for (let i = 0; i < 10_000; i++) {
    const [next, found] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
    if (found.length) await redis.unlink(...found);
    cursor = next;
    if (cursor === '0') return;
  }
}
