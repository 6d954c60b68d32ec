import { describe, expect, it } from 'vitest';
import { ConfigError, loadAdminConfig, loadDispatcherConfig, loadGatewayConfig } from '../src/index.js';

const secret = 'x'.repeat(40);

describe('environment validation', () => {
  it('applies the documented defaults', () => {
    const c = loadGatewayConfig({ JWT_SECRET: secret });
    expect(c).toMatchObject({
      redisUrl: 'redis://127.0.0.1:6379',
      keyPrefix: 'sb',
      port: 3000,
      opsPort: 9100,
      heartbeatIntervalMs: 5000,
      allowGuests: false,
      allowQueryToken: false,
      corsOrigins: [],
      logLevel: 'info',
      limits: { maxPayloadBytes: 65536, maxRoomsPerSocket: 100, maxConnectionsPerUser: 20, maxWatchedUsers: 200, ratePerSec: 20, rateBurst: 40 },
    });
    expect(c.podId).toMatch(/-\d+$/);
    expect(loadDispatcherConfig({})).toMatchObject({ opsPort: 9101, concurrency: 16 });
    expect(loadAdminConfig({ ADMIN_API_KEYS: 'k'.repeat(16) })).toMatchObject({
      port: 8080,
      adminApiKeys: ['k'.repeat(16)],
      heartbeatIntervalMs: 5000,
      console: { sessionTtlSec: 28_800 },
    });
  });

  it('converts and checks types, naming the variable', () => {
    const bad: [Record<string, string>, RegExp][] = [
      [{ JWT_SECRET: secret, PORT: 'abc' }, /^Invalid configuration: PORT /],
      [{ JWT_SECRET: secret, PORT: '70000' }, /PORT/],
      [{ JWT_SECRET: secret, ALLOW_GUESTS: 'maybe' }, /ALLOW_GUESTS/],
      [{ JWT_SECRET: secret, REDIS_URL: 'http://x' }, /REDIS_URL/],
      [{ JWT_SECRET: secret, KEY_PREFIX: 'a b' }, /KEY_PREFIX/],
      [{ JWT_SECRET: secret, LOG_LEVEL: 'loud' }, /LOG_LEVEL/],
      [{ JWT_SECRET: secret, HEARTBEAT_INTERVAL_MS: '10' }, /HEARTBEAT_INTERVAL_MS/],
      [{ JWT_SECRET: secret, CORS_ORIGINS: 'not a url' }, /CORS_ORIGINS/],
      [{}, /JWT_SECRET is required/],
      [{ JWT_SECRET: secret, JWT_JWKS_URL: 'https://x/jwks' }, /exclusive/],
    ];
    for (const [env, message] of bad) {
      expect(() => loadGatewayConfig(env), JSON.stringify(env)).toThrow(ConfigError);
      expect(() => loadGatewayConfig(env)).toThrow(message);
    }
    expect(() => loadAdminConfig({})).toThrow(/ADMIN_API_KEYS/);
    expect(() => loadAdminConfig({ ADMIN_API_KEYS: 'short' })).toThrow(/ADMIN_API_KEYS/);
    const key = { ADMIN_API_KEYS: 'k'.repeat(16) };
    for (const [env, message] of [
      [{ ...key, ADMIN_CONSOLE_SESSION_TTL_SEC: '30' }, /^Invalid configuration: ADMIN_CONSOLE_SESSION_TTL_SEC /],
      [{ ...key, ADMIN_CONSOLE_SESSION_TTL_SEC: String(8 * 86_400) }, /ADMIN_CONSOLE_SESSION_TTL_SEC/],
      [{ ...key, HEARTBEAT_INTERVAL_MS: '10' }, /^Invalid configuration: HEARTBEAT_INTERVAL_MS /],
    ] as const) {
      expect(() => loadAdminConfig(env)).toThrow(ConfigError);
      expect(() => loadAdminConfig(env)).toThrow(message);
    }
    expect(loadAdminConfig({ ...key, ADMIN_CONSOLE_SESSION_TTL_SEC: '600', HEARTBEAT_INTERVAL_MS: '1000' })).toMatchObject({
      heartbeatIntervalMs: 1000,
      console: { sessionTtlSec: 600 },
    });
  });

  it('never echoes secret values', () => {
    try {
      loadGatewayConfig({ JWT_SECRET: secret, JWT_CLOCK_TOLERANCE_SEC: 'not-a-number' });
    } catch (err) {
      expect((err as Error).message).toMatch(/JWT_CLOCK_TOLERANCE_SEC/);
    }
    try {
      loadAdminConfig({ ADMIN_API_KEYS: 'tiny-key' });
      expect.unreachable();
    } catch (err) {
      expect((err as Error).message).not.toContain('tiny-key');
    }
  });

  it('reads lists and PEM escapes', () => {
    const c = loadGatewayConfig({ JWT_PUBLIC_KEY: '-----BEGIN PUBLIC KEY-----\\nabc\\n-----END PUBLIC KEY-----', CORS_ORIGINS: 'https://a.example, http://localhost:8090' });
    expect(c.jwt.publicKey).toBe('-----BEGIN PUBLIC KEY-----\nabc\n-----END PUBLIC KEY-----');
    expect(c.corsOrigins).toEqual(['https://a.example', 'http://localhost:8090']);
    expect(loadGatewayConfig({ JWT_SECRET: secret, CORS_ORIGINS: '*' }).corsOrigins).toBe('*');
    expect(loadGatewayConfig({ JWT_SECRET: secret, KEY_PREFIX: '{app}:v2' }).keyPrefix).toBe('{app}:v2');
  });
});
