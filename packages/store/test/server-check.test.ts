import { Redis, type RedisOptions } from 'ioredis';
import { afterEach, describe, expect, it } from 'vitest';
import { freePort, startRedis, type RedisHandle } from '@switchboard/testkit';
import {
  assessRedisServer,
  checkRedisServer,
  parseInfo,
  parseRedisVersion,
  RedisServerError,
  verifyRedisServer,
  type RedisServerWarningCode,
} from '../src/server-check.js';

describe('Redis version and INFO parsing', () => {
  it('parses versions, missing parts as 0', () => {
    expect(parseRedisVersion('7.0.15')).toEqual([7, 0, 15]);
    expect(parseRedisVersion('6.2')).toEqual([6, 2, 0]);
    expect(parseRedisVersion(' 8 ')).toEqual([8, 0, 0]);
    expect(parseRedisVersion('7.2.4-rc1')).toEqual([7, 2, 4]);
    expect(parseRedisVersion('255.255.255')).toEqual([255, 255, 255]);
    expect(parseRedisVersion('unknown')).toBeUndefined();
    expect(parseRedisVersion('')).toBeUndefined();
  });

  it('reads the field:value lines of an INFO reply', () => {
    const info = parseInfo('# Server\r\nredis_version:7.2.4\r\nrun_id:ab:cd\r\n\r\n# Memory\r\nmaxmemory:0\r\n');
    expect(info.get('redis_version')).toBe('7.2.4');
    expect(info.get('run_id')).toBe('ab:cd');
    expect(info.get('maxmemory')).toBe('0');
    expect(info.has('# Server')).toBe(false);
  });
});

describe('what a server setup means', () => {
  const good = { version: '7.0.0', maxmemory: 100 * 1024 * 1024, maxmemoryPolicy: 'noeviction', problems: [] };
  const codes = (facts: Parameters<typeof assessRedisServer>[0]) => assessRedisServer(facts).map((w) => w.code);

  it('refuses a Redis older than 7.0, with a message saying why', () => {
    for (const version of ['6.2.14', '6.0.0', '5.0.7']) {
      expect(() => assessRedisServer({ ...good, version })).toThrow(RedisServerError);
    }
    expect(() => assessRedisServer({ ...good, version: '6.2.14' })).toThrow(
      'Redis 6.2.14 is too old: Switchboard needs Redis 7.0 or later (room history detects gaps with the max-deleted-entry-id of XINFO STREAM, new in 7.0)',
    );
    for (const version of ['7.0.0', '7.2.4', '8.0.2', '10.0.0']) expect(codes({ ...good, version })).toEqual([]);
  });

  it('warns about no maxmemory, an evicting policy, and what it could not read', () => {
    expect(codes({ ...good, maxmemory: 0 })).toEqual<RedisServerWarningCode[]>(['NO_MAXMEMORY']);
    expect(codes({ ...good, maxmemoryPolicy: 'allkeys-lru' })).toEqual<RedisServerWarningCode[]>(['EVICTION_POLICY']);
    expect(codes({ ...good, maxmemory: 0, maxmemoryPolicy: 'volatile-ttl' })).toEqual<RedisServerWarningCode[]>(['NO_MAXMEMORY', 'EVICTION_POLICY']);
    const [evicting] = assessRedisServer({ ...good, maxmemoryPolicy: 'allkeys-lru' });
    expect(evicting?.message).toMatch(/^Redis maxmemory-policy is allkeys-lru, not noeviction: at maxmemory Redis silently evicts keys, dropping registry, inbox and queue keys/);
    const [unchecked, ...rest] = assessRedisServer({ problems: ['CONFIG GET: ERR unknown command', 'INFO memory: NOPERM'] });
    expect(rest).toEqual([]);
    expect(unchecked).toEqual({
      code: 'UNCHECKED',
      message: expect.stringMatching(/^Could not check the version or maxmemory and maxmemory-policy of the Redis server \(CONFIG GET: ERR unknown command; INFO memory: NOPERM\)/),
    });
  });
});

describe('checkRedisServer on real servers', () => {
  const servers: RedisHandle[] = [];
  const clients: Redis[] = [];
  afterEach(async () => {
    for (const c of clients.splice(0)) c.disconnect();
    await Promise.all(servers.splice(0).map((s) => s.stop()));
  });
  const client = (url: string, options: RedisOptions = {}) => {
    const c = new Redis(url, { maxRetriesPerRequest: 1, ...options });
    c.on('error', () => {});
    clients.push(c);
    return c;
  };
  const server = async (serverArgs: string[] = []) => {
    const s = await startRedis({ fresh: true, ...(serverArgs.length ? { serverArgs } : {}) });
    servers.push(s);
    return s;
  };

  it('warns about a server started without maxmemory', async () => {
    const s = await server();
    const check = await checkRedisServer(client(s.url));
    expect(check.version).toMatch(/^\d+\.\d+\.\d+/);
    expect(check.warnings.map((w) => w.code)).toEqual(['NO_MAXMEMORY']);
  });

  it('has nothing to say about maxmemory 100mb with noeviction', async () => {
    const s = await server(['--maxmemory', '100mb', '--maxmemory-policy', 'noeviction']);
    expect(await checkRedisServer(client(s.url))).toEqual({ version: expect.any(String), warnings: [] });
  });

  it('reads INFO memory where CONFIG is disabled, as on managed Redis', async () => {
    const s = await server(['--maxmemory', '50mb', '--maxmemory-policy', 'allkeys-lru', '--rename-command', 'CONFIG', '']);
    const c = client(s.url);
    await expect(c.config('GET', 'maxmemory')).rejects.toThrow(/unknown command/i);
    const check = await checkRedisServer(c);
    expect(check.warnings.map((w) => w.code)).toEqual(['EVICTION_POLICY']);
  });

  it('only warns when the server does not answer', async () => {
    const c = client(`redis://127.0.0.1:${await freePort()}`, { retryStrategy: () => 50 });
    const check = await checkRedisServer(c, { timeoutMs: 300 });
    expect(check.version).toBeUndefined();
    expect(check.warnings).toEqual([{ code: 'UNCHECKED', message: expect.stringContaining('(connecting: ') }]);
  });

  it('verifyRedisServer logs the warnings and lets the service start', async () => {
    const s = await server();
    const logged: { level: string; obj: object; msg: string }[] = [];
    const logger = {
      warn: (obj: object, msg: string) => logged.push({ level: 'warn', obj, msg }),
      fatal: (obj: object, msg: string) => logged.push({ level: 'fatal', obj, msg }),
    };
    expect(await verifyRedisServer(client(s.url), logger)).toBe(true);
    expect(logged).toEqual([
      { level: 'warn', obj: { check: 'NO_MAXMEMORY', redisVersion: expect.any(String) }, msg: expect.stringMatching(/^Redis maxmemory is 0/) },
    ]);
  });
});
