import { afterEach, describe, expect, inject, it } from 'vitest';
import { randomKeyPrefix, startRedis } from '@switchboard/testkit';
import { spawnService, type ServiceProcess } from '@switchboard/harness';

describe('admin start-up warnings', () => {
  const started: ServiceProcess[] = [];
  afterEach(async () => {
    await Promise.all(started.splice(0).map((p) => p.stop()));
  });

  it('warns when a JWKS is configured without JWT_AUDIENCE', async () => {
    const admin = spawnService('admin', {
      REDIS_URL: inject('redisUrl'),
      KEY_PREFIX: randomKeyPrefix(),
      JWT_JWKS_URL: 'https://id.example/.well-known/jwks.json',
      JWT_ISSUER: 'https://id.example',
      PORT: '0',
      LOG_LEVEL: 'info',
    });
    started.push(admin);
    const line = await admin.waitForLog((l) => l.level === 40 && /JWT_JWKS_URL/.test(l.msg ?? ''));
    expect(line).toMatchObject({
      variables: ['JWT_JWKS_URL', 'JWT_AUDIENCE'],
      msg: expect.stringMatching(/^JWT_JWKS_URL is set without JWT_AUDIENCE: tokens are accepted whatever their aud/),
    });
  });

  it('refuses a JWKS URL over plain http on another host, naming JWT_JWKS_URL', async () => {
    const admin = spawnService('admin', { JWT_JWKS_URL: 'http://id.example/jwks.json', PORT: '0' });
    started.push(admin);
    expect(await admin.exited).toEqual({ code: 1, signal: null });
    expect(admin.output()).toMatch(/^Invalid configuration: JWT_JWKS_URL must be an https:\/\/ URL/);
    expect(admin.output()).not.toMatch(/\n\s+at /);
  });

  it('warns when Redis has no maxmemory, and starts', async () => {
    const redis = await startRedis({ fresh: true });
    try {
      const admin = spawnService('admin', { REDIS_URL: redis.url, KEY_PREFIX: randomKeyPrefix(), ADMIN_API_KEYS: 'k'.repeat(16), PORT: '0', LOG_LEVEL: 'info' });
      started.push(admin);
      expect(await admin.waitForLog((l) => l.check === 'NO_MAXMEMORY')).toMatchObject({ level: 40 });
      await admin.waitForLog((l) => /listening/i.test(l.msg ?? ''));
      await admin.stop();
    } finally {
      await redis.stop();
    }
  });
});
