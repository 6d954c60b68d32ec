import { createServer, type AddressInfo, type Socket } from 'node:net';
import { exportSPKI, generateKeyPair } from 'jose';
import { afterEach, describe, expect, inject, it } from 'vitest';
import { randomKeyPrefix, startRedis, TEST_JWT_SECRET, type RedisHandle } from '@switchboard/testkit';
import { spawnService, type ServiceProcess } from '@switchboard/harness';
import { keys } from '@switchboard/store';
import { Redis } from 'ioredis';

const baseEnv = (): Record<string, string> => ({
  KEY_PREFIX: randomKeyPrefix(),
  JWT_SECRET: TEST_JWT_SECRET,
  PORT: '0',
  OPS_PORT: '0',
  LOG_LEVEL: 'info',
});

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

describe('gateway start-up checks of the Redis server', () => {
  const started: ServiceProcess[] = [];
  const redisServers: RedisHandle[] = [];
  afterEach(async () => {
    await Promise.all(started.splice(0).map((p) => p.stop()));
    await Promise.all(redisServers.splice(0).map((r) => r.stop()));
  });

  it('warns, and says why, when Redis has no maxmemory', async () => {
    const redis = await startRedis({ fresh: true });
    redisServers.push(redis);
    const gateway = spawnService('gateway', { ...baseEnv(), REDIS_URL: redis.url });
    started.push(gateway);
    const line = await gateway.waitForLog((l) => l.check === 'NO_MAXMEMORY');
    expect(line).toMatchObject({ level: 40, msg: expect.stringMatching(/^Redis maxmemory is 0 \(no limit\)/) });
    await gateway.waitForLog((l) => l.msg === 'gateway listening');
  });

  it('refuses a Redis older than 7.0: exit 1 with a clear message and no stack trace', async () => {
    // The machine has no Redis 6; this server answers the few commands a start needs as 6.2 would.
    const old = await startOldRedis('6.2.14');
    try {
      const gateway = spawnService('gateway', { ...baseEnv(), REDIS_URL: old.url });
      started.push(gateway);
      expect(await gateway.exited).toEqual({ code: 1, signal: null });
      const fatal = gateway.logs().find((l) => l.level === 60);
      expect(fatal).toMatchObject({
        check: 'REDIS_TOO_OLD',
        redisVersion: '6.2.14',
        msg: 'Redis 6.2.14 is too old: Switchboard needs Redis 7.0 or later (room history detects gaps with the max-deleted-entry-id of XINFO STREAM, new in 7.0)',
      });
      expect(fatal).not.toHaveProperty('err');
      expect(gateway.output()).not.toMatch(/\n\s+at /);
      expect(gateway.logs().some((l) => l.msg === 'gateway listening')).toBe(false);
    } finally {
      await old.close();
    }
  });
});

describe('gateway start-up on a port it cannot have', () => {
  it('exits 1 with "cannot listen" and the reason, and leaves nothing in the registry', async () => {
    const squatter = createServer();
    await new Promise<void>((resolve) => squatter.listen(0, '127.0.0.1', resolve));
    const prefix = randomKeyPrefix();
    const env = { ...baseEnv(), KEY_PREFIX: prefix, REDIS_URL: inject('redisUrl'), HOST: '127.0.0.1', PORT: String((squatter.address() as AddressInfo).port) };
    const redis = new Redis(inject('redisUrl'));
    try {
      const gateway = spawnService('gateway', env);
      expect(await gateway.exited).toEqual({ code: 1, signal: null });
      expect(gateway.logs().find((l) => l.level === 60)).toMatchObject({ msg: 'cannot listen', err: { code: 'EADDRINUSE' } });
      expect(gateway.logs().some((l) => l.msg === 'gateway listening')).toBe(false);
      // it had registered itself (the heartbeat starts first) and left as a clean shutdown does
      const k = keys(prefix);
      expect(await redis.zcard(k.instances)).toBe(0);
      expect(await redis.keys(`${k.prefix}:{reg}:instance:*`)).toEqual([]);
    } finally {
      redis.disconnect();
      squatter.close();
    }
  });
});

/**
 * A TCP server speaking just enough RESP for a service's start: `INFO` (as Redis `version`
 * reports it), `CONFIG GET`, and `+OK` for anything else (`CLIENT SETNAME`, `SELECT`).
 */
async function startOldRedis(version: string): Promise<{ url: string; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  const bulk = (s: string) => `$${Buffer.byteLength(s)}\r\n${s}\r\n`;
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    let buffer = '';
    socket.on('data', (chunk: Buffer) => {
      buffer += chunk.toString('latin1');
      for (;;) {
        const parsed = parseCommand(buffer);
        if (!parsed) break;
        buffer = buffer.slice(parsed.length);
        const [name = '', ...args] = parsed.args;
        switch (name.toUpperCase()) {
          case 'INFO':
            socket.write(bulk(`# Server\r\nredis_version:${version}\r\n\r\n# Persistence\r\nloading:0\r\n\r\n# Memory\r\nmaxmemory:0\r\nmaxmemory_policy:noeviction\r\n`));
            break;
          case 'CONFIG':
            socket.write(args[0]?.toUpperCase() === 'GET' ? `*4\r\n${bulk('maxmemory')}${bulk('0')}${bulk('maxmemory-policy')}${bulk('noeviction')}` : '+OK\r\n');
            break;
          case 'PING':
            socket.write('+PONG\r\n');
            break;
          default:
            socket.write('+OK\r\n');
        }
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `redis://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

/** One RESP array of bulk strings from the start of `buffer`, or `undefined` until it is complete. */
function parseCommand(buffer: string): { args: string[]; length: number } | undefined {
  const header = /^\*(\d+)\r\n/.exec(buffer);
  if (!header) return undefined;
  let offset = header[0].length;
  const args: string[] = [];
  for (let i = 0; i < Number(header[1]); i++) {
    const len = /^\$(\d+)\r\n/.exec(buffer.slice(offset));
    if (!len) return undefined;
    const start = offset + len[0].length;
    const end = start + Number(len[1]);
    if (buffer.length < end + 2) return undefined;
    args.push(buffer.slice(start, end));
    offset = end + 2;
  }
  return { args, length: offset };
}
