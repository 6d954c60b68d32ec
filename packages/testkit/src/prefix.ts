import { randomUUID } from 'node:crypto';
import type { Cluster, Redis } from 'ioredis';

/** A fresh key prefix, so tests sharing one Redis never meet. */
export function randomKeyPrefix(): string {
  return `t${randomUUID().slice(0, 8)}`;
}

/** Deletes every key under `<prefix>:` (bounded scan), on every primary of a Redis Cluster. */
export async function deleteKeys(redis: Redis | Cluster, prefix: string): Promise<void> {
  const nodes: Redis[] = (redis as Cluster).isCluster ? (redis as Cluster).nodes('master') : [redis as Redis];
  await Promise.all(
    nodes.map(async (node) => {
      let cursor = '0';
      for (let i = 0; i < 10_000; i++) {
        const [next, found] = await node.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
        // one key at a time: on a cluster node, keys of different slots cannot share an UNLINK
        await Promise.all(found.map((key) => node.unlink(key)));
        cursor = next;
        if (cursor === '0') return;
      }
    }),
  );
}
