import { describe, expect, it } from 'vitest';
import { ConfigError, jwtWarnings, loadAdminConfig, loadDispatcherConfig, loadGatewayConfig, redactCredentials } from '../src/index.js';

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

  it('refuses a JWKS URL over plain http except on a loopback host, naming JWT_JWKS_URL', () => {
    for (const env of [{ JWT_JWKS_URL: 'http://keys.example/jwks.json' }, { JWT_JWKS_URL: 'http://10.1.2.3/jwks' }]) {
      expect(() => loadGatewayConfig(env)).toThrow(ConfigError);
      expect(() => loadGatewayConfig(env)).toThrow(
        'Invalid configuration: JWT_JWKS_URL must be an https:// URL (plain http:// only on a loopback host: localhost, 127.0.0.0/8, ::1)',
      );
      expect(() => loadAdminConfig(env)).toThrow(/^Invalid configuration: JWT_JWKS_URL must be an https:\/\/ URL/);
    }
    expect(loadGatewayConfig({ JWT_JWKS_URL: 'http://127.0.0.1:8080/jwks' }).jwt.jwksUrl).toBe('http://127.0.0.1:8080/jwks');
    expect(loadGatewayConfig({ JWT_JWKS_URL: 'http://localhost/jwks' }).jwt.jwksUrl).toBe('http://localhost/jwks');
    expect(loadGatewayConfig({ JWT_JWKS_URL: 'https://id.example/jwks' }).jwt.jwksUrl).toBe('https://id.example/jwks');
  });

  it('warns about a public key or JWKS without JWT_ISSUER / JWT_AUDIENCE, not about a secret', () => {
    const pem = '-----BEGIN PUBLIC KEY-----\\nabc\\n-----END PUBLIC KEY-----';
    const jwks = 'https://id.example/.well-known/jwks.json';
    expect(jwtWarnings(loadGatewayConfig({ JWT_SECRET: secret }).jwt)).toEqual([]);
    expect(jwtWarnings(loadAdminConfig({ ADMIN_API_KEYS: 'k'.repeat(16) }).jwt)).toEqual([]);
    expect(jwtWarnings(loadGatewayConfig({ JWT_PUBLIC_KEY: pem, JWT_ISSUER: 'https://id.example', JWT_AUDIENCE: 'rt' }).jwt)).toEqual([]);

    const [both] = jwtWarnings(loadGatewayConfig({ JWT_JWKS_URL: jwks }).jwt);
    expect(both?.variables).toEqual(['JWT_JWKS_URL', 'JWT_ISSUER', 'JWT_AUDIENCE']);
    expect(both?.message).toMatch(/^JWT_JWKS_URL is set without JWT_ISSUER and JWT_AUDIENCE: tokens are accepted whatever their iss and aud/);
    const [noAudience] = jwtWarnings(loadAdminConfig({ JWT_PUBLIC_KEY: pem, JWT_ISSUER: 'https://id.example' }).jwt);
    expect(noAudience?.variables).toEqual(['JWT_PUBLIC_KEY', 'JWT_AUDIENCE']);
    expect(noAudience?.message).toMatch(/^JWT_PUBLIC_KEY is set without JWT_AUDIENCE: tokens are accepted whatever their aud,/);
    expect(jwtWarnings(loadGatewayConfig({ JWT_PUBLIC_KEY: pem, JWT_AUDIENCE: 'rt' }).jwt)[0]?.variables).toEqual(['JWT_PUBLIC_KEY', 'JWT_ISSUER']);
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

  it('never echoes the credentials of a malformed URL', () => {
    const message = (env: Record<string, string>) => {
      try {
        loadGatewayConfig({ JWT_SECRET: secret, ...env });
      } catch (err) {
        expect(err).toBeInstanceOf(ConfigError);
        return (err as ConfigError).message;
      }
      return expect.unreachable('the configuration was accepted');
    };
    // no "redis://" (the schema's pattern refuses it)
    const noScheme = message({ REDIS_URL: 'redis//:hunter2@127.0.0.1:6379' });
    expect(noScheme).toBe('Invalid configuration: REDIS_URL Expected string to match \'^rediss?://\' (got "***@127.0.0.1:6379")');
    // a scheme, but no URL parser accepts it: ioredis would throw with the whole URL as `input`
    const badPort = message({ REDIS_URL: 'redis://admin:hunter2@redis.internal:63 79' });
    expect(badPort).toBe('Invalid configuration: REDIS_URL is not a valid URL (got "redis://***@redis.internal:63 79")');
    const atInPassword = message({ REDIS_URL: 'rediss://:hun@ter2@redis.internal:notaport' });
    expect(atInPassword).toMatch(/^Invalid configuration: REDIS_URL is not a valid URL \(got "rediss:\/\/\*\*\*@redis\.internal:notaport"\)$/);
    const badEscape = message({ REDIS_URL: 'redis://:hunter2%zz@redis.internal:6379' });
    expect(badEscape).toMatch(/REDIS_URL has a malformed %-escape/);
    for (const m of [noScheme, badPort, atInPassword, badEscape]) {
      expect(m).not.toMatch(/hunter2|hun@ter2|admin/);
    }
    // secret-named variables stay hidden entirely
    expect(message({ TOKEN_COOKIE: 'not a cookie name' })).toMatch(/^Invalid configuration: TOKEN_COOKIE [^(]*$/);
  });

  it('redacts the userinfo of URL-looking values only', () => {
    expect(redactCredentials('redis://:pw@host:6379/0')).toBe('redis://***@host:6379/0');
    expect(redactCredentials('redis://user:pw@host')).toBe('redis://***@host');
    expect(redactCredentials('redis:/user:pw@host')).toBe('redis:/***@host');
    expect(redactCredentials('user:pw@host:6379')).toBe('***@host:6379');
    expect(redactCredentials('redis:user:pw@host')).toBe('***@host');
    expect(redactCredentials('redis://u:p@h1,redis://u:p@h2')).toBe('redis://***@h2');
    expect(redactCredentials('redis://host:6379')).toBe('redis://host:6379');
    expect(redactCredentials('loud')).toBe('loud');
  });

  it('reads lists and PEM escapes', () => {
    const c = loadGatewayConfig({ JWT_PUBLIC_KEY: '-----BEGIN PUBLIC KEY-----\\nabc\\n-----END PUBLIC KEY-----', CORS_ORIGINS: 'https://a.example, http://localhost:8090' });
    expect(c.jwt.publicKey).toBe('-----BEGIN PUBLIC KEY-----\nabc\n-----END PUBLIC KEY-----');
    expect(c.corsOrigins).toEqual(['https://a.example', 'http://localhost:8090']);
    expect(loadGatewayConfig({ JWT_SECRET: secret, CORS_ORIGINS: '*' }).corsOrigins).toBe('*');
    expect(loadGatewayConfig({ JWT_SECRET: secret, KEY_PREFIX: '{app}:v2' }).keyPrefix).toBe('{app}:v2');
  });
});
