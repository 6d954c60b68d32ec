import { describe, expect, it } from 'vitest';
import { randomKeyPrefix, startRedis } from '@switchboard/testkit';
import { spawnService } from '@switchboard/harness';

describe('dispatcher start-up checks of the Redis server', () => {
  it('warns when Redis has no maxmemory, and starts', async () => {
    const redis = await startRedis({ fresh: true });
    const dispatcher = spawnService('dispatcher', { REDIS_URL: redis.url, KEY_PREFIX: randomKeyPrefix(), OPS_PORT: '0', LOG_LEVEL: 'info' });
    try {
      const line = await dispatcher.waitForLog((l) => l.check === 'NO_MAXMEMORY');
      expect(line).toMatchObject({ level: 40, msg: expect.stringMatching(/^Redis maxmemory is 0/) });
      const started = await dispatcher.waitForLog((l) => l.msg === 'dispatcher started');
      // the test kit runs services on the Node of the test run (CI: 20 and 24)
      const metrics = await (await fetch(`http://127.0.0.1:${String(started.opsPort)}/metrics`)).text();
      expect(/^switchboard_nodejs_version_info\{version="(v[^"]+)"/m.exec(metrics)?.[1]).toBe(process.version);
      expect(await dispatcher.stop()).toEqual({ code: 0, signal: null });
    } finally {
      await dispatcher.stop('SIGKILL');
      await redis.stop();
    }
  });
});
