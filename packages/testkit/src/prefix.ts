import { randomUUID } from 'node:crypto';
import type { Cluster, Redis } from 'ioredis';

/** A fresh key prefix, so tests sharing one Redis never meet. */
export function randomKeyPrefix(): string {
  return `t${randomUUID().slice(0, 8)}`;
}

/**
 * Deletes every key under `<prefix>:` (bounded scan). On a `Cluster`, every primary the client
 * knows is scanned, and each key is unlinked through the cluster client (keys of one node may
 * be in different slots, which one multi-key UNLINK refuses).
 */
export async function deleteKeys(redis: Redis | Cluster, prefix: string): Promise<void> {
  if (!isCluster(redis)) return scanDelete(redis, prefix, async (keys) => void (await redis.unlink(...keys)));
  const primaries = redis.nodes('master');
  if (!primaries.length) throw new Error('deleteKeys: the cluster client knows no primary (is it connected?)');
  await Promise.all(
    primaries.map((node) => scanDelete(node, prefix, async (keys) => void (await Promise.all(keys.map((key) => redis.unlink(key)))))),
  );
}

function isCluster(redis: Redis | Cluster): redis is Cluster {
  return redis.isCluster;
}

async function scanDelete(node: Redis, prefix: string, unlink: (keys: string[]) => Promise<void>): Promise<void> {
  let cursor = '0';
  for (let i = 0; i < 10_000; i++) {
    const [next, found] = await node.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
    if (found.length) await unlink(found);
    cursor = next;
    if (cursor === '0') return;
  }
}
