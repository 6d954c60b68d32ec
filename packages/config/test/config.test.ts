import { describe, expect, it } from 'vitest';
import { ConfigError, describeRedis, jwtWarnings, loadAdminConfig, loadDispatcherConfig, loadGatewayConfig, redactCredentials, webhookWarnings } from '../src/index.js';

const secret = 'x'.repeat(40);

describe('environment validation', () => {
  it('applies the documented defaults', () => {
    const c = loadGatewayConfig({ JWT_SECRET: secret });
    expect(c).toMatchObject({
      redis: { topology: { kind: 'standalone', url: 'redis://127.0.0.1:6379' }, tls: false, pubsubMode: 'classic' },
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
    expect(loadGatewayConfig({ JWT_SECRET: secret, KEY_PREFIX: 'app.v2:eu' }).keyPrefix).toBe('app.v2:eu');
    // the key schema places the hash tags: a prefix with braces would put everything in one slot
    expect(() => loadGatewayConfig({ JWT_SECRET: secret, KEY_PREFIX: '{app}:v2' })).toThrow(/^Invalid configuration: KEY_PREFIX/);
  });
});

describe('Redis topology', () => {
  const load = (env: Record<string, string>) => loadDispatcherConfig(env).redis;

  it('takes a URL, a Sentinel group or Redis Cluster seed nodes, each with its default pub/sub mode', () => {
    expect(load({ REDIS_URL: 'rediss://:pw@redis.internal:6380' })).toEqual({
      topology: { kind: 'standalone', url: 'rediss://:pw@redis.internal:6380' },
      tls: false,
      pubsubMode: 'classic',
    });
    expect(load({ REDIS_SENTINELS: 's1:26379, s2:26379,[::1]:26380', REDIS_SENTINEL_NAME: 'sb-primary', REDIS_PASSWORD: 'pw', REDIS_SENTINEL_PASSWORD: 'spw' })).toEqual({
      topology: {
        kind: 'sentinel',
        name: 'sb-primary',
        sentinels: [
          { host: 's1', port: 26379 },
          { host: 's2', port: 26379 },
          { host: '::1', port: 26380 },
        ],
      },
      password: 'pw',
      sentinelPassword: 'spw',
      tls: false,
      pubsubMode: 'classic',
    });
    expect(load({ REDIS_CLUSTER_NODES: '10.0.0.1:7000,10.0.0.2:7000', REDIS_USERNAME: 'sb', REDIS_PASSWORD: 'pw', REDIS_TLS: 'true' })).toEqual({
      topology: { kind: 'cluster', nodes: [{ host: '10.0.0.1', port: 7000 }, { host: '10.0.0.2', port: 7000 }] },
      username: 'sb',
      password: 'pw',
      tls: true,
      pubsubMode: 'sharded',
    });
    expect(load({ REDIS_CLUSTER_NODES: 'n:7000', PUBSUB_MODE: 'classic' }).pubsubMode).toBe('classic');
    expect(load({ PUBSUB_MODE: 'sharded' }).pubsubMode).toBe('sharded');
  });

  it('refuses ambiguous or incomplete topologies, naming the variables', () => {
    const bad: [Record<string, string>, string][] = [
      [{ REDIS_URL: 'redis://a:6379', REDIS_CLUSTER_NODES: 'b:7000' }, 'Invalid configuration: REDIS_URL/REDIS_CLUSTER_NODES are exclusive: set one of them'],
      [{ REDIS_SENTINELS: 's:26379', REDIS_CLUSTER_NODES: 'b:7000', REDIS_SENTINEL_NAME: 'm' }, 'Invalid configuration: REDIS_SENTINELS/REDIS_CLUSTER_NODES are exclusive: set one of them'],
      [{ REDIS_SENTINELS: 's:26379' }, "Invalid configuration: REDIS_SENTINEL_NAME is required with REDIS_SENTINELS (the primary's name)"],
      [{ REDIS_SENTINEL_NAME: 'm' }, 'Invalid configuration: REDIS_SENTINELS is required with REDIS_SENTINEL_NAME'],
      [{ REDIS_CLUSTER_NODES: 'node-without-port' }, 'Invalid configuration: REDIS_CLUSTER_NODES has an entry that is not host:port (got "node-without-port")'],
      [{ REDIS_CLUSTER_NODES: 'n:99999' }, 'Invalid configuration: REDIS_CLUSTER_NODES has an entry that is not host:port (got "n:99999")'],
      [{ REDIS_CLUSTER_NODES: ' , ' }, 'Invalid configuration: REDIS_CLUSTER_NODES needs at least one host:port'],
      [{ REDIS_PASSWORD: 'pw' }, 'Invalid configuration: REDIS_PASSWORD is for Sentinel and Cluster: with REDIS_URL, put credentials in the URL'],
      [{ REDIS_TLS: 'true' }, 'Invalid configuration: REDIS_TLS is for Sentinel and Cluster: with REDIS_URL, use rediss://'],
      [{ REDIS_CLUSTER_NODES: 'n:7000', REDIS_SENTINEL_PASSWORD: 'x' }, 'Invalid configuration: REDIS_SENTINEL_PASSWORD is for Sentinel (with REDIS_SENTINELS)'],
      [{ PUBSUB_MODE: 'fast' }, 'Invalid configuration: PUBSUB_MODE'],
    ];
    for (const [env, message] of bad) {
      expect(() => load(env), JSON.stringify(env)).toThrow(ConfigError);
      expect(() => load(env)).toThrow(message);
    }
  });

  it('describes a topology for logs without its credentials', () => {
    expect(describeRedis(load({ REDIS_URL: 'redis://user:hunter2@h:6390/2' }))).toEqual({ topology: 'standalone', host: 'h:6390', tls: false, pubsub: 'classic' });
    const cluster = describeRedis(load({ REDIS_CLUSTER_NODES: 'a:7000,[::1]:7001', REDIS_PASSWORD: 'hunter2' }));
    expect(cluster).toEqual({ topology: 'cluster', nodes: ['a:7000', '[::1]:7001'], tls: false, pubsub: 'sharded' });
    expect(JSON.stringify(describeRedis(load({ REDIS_SENTINELS: 's:1', REDIS_SENTINEL_NAME: 'm', REDIS_PASSWORD: 'hunter2' })))).not.toContain('hunter2');
  });
});

describe('lifecycle events and webhooks', () => {
  const secret = 'w'.repeat(32);
  const gw = { JWT_SECRET: 's'.repeat(32) };

  it('are off unless EVENTS_QUEUE=true or WEBHOOK_URLS is set, for the gateway and the dispatcher', () => {
    expect(loadGatewayConfig(gw).events).toBeUndefined();
    expect(loadDispatcherConfig({}).events).toBeUndefined();
    expect(loadDispatcherConfig({ WEBHOOK_URLS: ' , ' }).events).toBeUndefined();
    expect(loadGatewayConfig({ ...gw, EVENTS_QUEUE: 'true' }).events).toEqual({ outboxMax: 200_000 });
    // the gateway only writes: it needs neither the secret nor anything else of the webhooks
    expect(loadGatewayConfig({ ...gw, WEBHOOK_URLS: 'https://hooks.example.com/sb', EVENTS_OUTBOX_MAX: '5000' }).events).toEqual({ outboxMax: 5000 });
    const d = loadDispatcherConfig({ EVENTS_QUEUE: 'true', EVENTS_QUEUE_MAX: '50' });
    expect(d.events).toEqual({ outboxMax: 200_000, queue: { maxJobs: 50 } });
  });

  it('reads the webhook endpoints with their defaults, labels without credentials or query, stable ids', () => {
    const d = loadDispatcherConfig({
      WEBHOOK_URLS: 'https://user:pw@hooks.example.com/sb?token=abc, http://127.0.0.1:9999/in',
      WEBHOOK_SECRET: secret,
      WEBHOOK_ROOM_PREFIXES: 'trip:, public:',
    });
    expect(d.events?.queue).toBeUndefined();
    const w = d.events!.webhooks!;
    expect(w).toMatchObject({ secret, roomPrefixes: ['trip:', 'public:'], batchMs: 50, batchMax: 100, maxPending: 100_000, timeoutMs: 5000 });
    expect(w.endpoints.map((e) => e.label)).toEqual(['https://hooks.example.com/sb', 'http://127.0.0.1:9999/in']);
    expect(w.endpoints[0]!.url).toBe('https://user:pw@hooks.example.com/sb?token=abc');
    expect(w.endpoints[0]!.id).toMatch(/^[0-9a-f]{16}$/);
    expect(loadDispatcherConfig({ WEBHOOK_URLS: w.endpoints[0]!.url, WEBHOOK_SECRET: secret }).events!.webhooks!.endpoints[0]!.id).toBe(w.endpoints[0]!.id);
  });

  it('refuses bad settings with the variable named and no secret shown', () => {
    const refuse = (env: Record<string, string>, variable: string, message: RegExp) => {
      let err: unknown;
      try {
        loadDispatcherConfig(env);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(ConfigError);
      expect((err as ConfigError).variable).toBe(variable);
      expect((err as Error).message).toMatch(message);
      return (err as Error).message;
    };
    refuse({ WEBHOOK_URLS: 'https://h.example.com/x' }, 'WEBHOOK_SECRET', /required with WEBHOOK_URLS/);
    refuse({ WEBHOOK_URLS: 'https://h.example.com/x', WEBHOOK_SECRET: 'short' }, 'WEBHOOK_SECRET', /at least 32 bytes/);
    const shown = refuse({ WEBHOOK_URLS: 'ftp://user:hunter2@h.example.com/x', WEBHOOK_SECRET: secret }, 'WEBHOOK_URLS', /not an http\(s\) URL/);
    expect(shown).not.toContain('hunter2');
    refuse({ WEBHOOK_URLS: 'https://h.example.com/x,https://h.example.com/x', WEBHOOK_SECRET: secret }, 'WEBHOOK_URLS', /twice/);
    refuse({ WEBHOOK_URLS: 'https://h.example.com/x', WEBHOOK_SECRET: secret, WEBHOOK_ROOM_PREFIXES: 'trip :' }, 'WEBHOOK_ROOM_PREFIXES', /no room name/);
    refuse({ WEBHOOK_URLS: 'https://h.example.com/x', WEBHOOK_SECRET: secret, WEBHOOK_BATCH_MAX: '5000' }, 'WEBHOOK_BATCH_MAX', /./);
  });

  it('warns about plain http to another host, not to a loopback one', () => {
    const endpoints = loadDispatcherConfig({ WEBHOOK_URLS: 'http://127.0.0.1:1/a,http://hooks.internal/b,https://h.example.com/c', WEBHOOK_SECRET: secret }).events!.webhooks!.endpoints;
    const warnings = webhookWarnings(endpoints);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]!.message).toContain('http://hooks.internal/b');
    expect(warnings[0]!.message).not.toContain('127.0.0.1');
    expect(webhookWarnings(endpoints.slice(0, 1))).toEqual([]);
  });
});
