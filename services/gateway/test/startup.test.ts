import { exportSPKI, generateKeyPair } from 'jose';
import { afterEach, describe, expect, inject, it } from 'vitest';
import { randomKeyPrefix, spawnService, type ServiceProcess } from '@switchboard/testkit';

describe('gateway start-up warnings', () => {
  const started: ServiceProcess[] = [];
  afterEach(async () => {
    await Promise.all(started.splice(0).map((p) => p.stop()));
  });

  it('warns when a public key is configured without JWT_ISSUER and JWT_AUDIENCE', async () => {
    const pem = await exportSPKI((await generateKeyPair('ES256')).publicKey);
    const gateway = spawnService('gateway', {
      REDIS_URL: inject('redisUrl'),
      KEY_PREFIX: randomKeyPrefix(),
      JWT_PUBLIC_KEY: pem,
      PORT: '0',
      OPS_PORT: '0',
      LOG_LEVEL: 'info',
    });
    started.push(gateway);
    const line = await gateway.waitForLog((l) => l.level === 40 && /JWT_PUBLIC_KEY/.test(l.msg ?? ''));
    expect(line).toMatchObject({
      variables: ['JWT_PUBLIC_KEY', 'JWT_ISSUER', 'JWT_AUDIENCE'],
      msg: expect.stringMatching(/^JWT_PUBLIC_KEY is set without JWT_ISSUER and JWT_AUDIENCE: /),
    });
    await gateway.waitForLog((l) => l.msg === 'gateway listening');
    expect(gateway.output()).not.toContain('BEGIN PUBLIC KEY');
  });
});
