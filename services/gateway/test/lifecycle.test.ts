import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { TokenVerifier } from '@switchboard/auth';
import { ReadModel } from '@switchboard/store';
import { eventually, scrapeMetric, startRedis, waitFor, type RedisHandle } from '@switchboard/testkit';
import { startCluster, type Cluster } from '@switchboard/harness';

describe('token expiry', () => {
  let cluster: Cluster;
  beforeAll(async () => {
    cluster = await startCluster({ redis: inject('redis'), gateways: 1, env: { TOKEN_EXPIRY_WARNING_SEC: '60' } });
  });
  afterAll(() => cluster?.stop());

  it('warns at once when the warning time had passed before the session started', async () => {
    const token = await cluster.token({ sub: 'short-lived', expiresIn: 30 });
    const s = cluster.socket({ sub: 'short-lived', token });
    const warned = waitFor(s, 'session:expiring', 5000);
    await waitFor(s, 'session:ready');
    const { exp } = await warned;
    expect(exp * 1000).toBeGreaterThan(Date.now());
    expect(s.connected).toBe(true);
  });
});

describe('nothing of a socket outlives it', () => {
  describe('a client that goes away while its registration waits for Redis', () => {
    let redis: RedisHandle;
    let admin: Redis;
    let cluster: Cluster;
    beforeAll(async () => {
      redis = await startRedis({ fresh: true });
      admin = new Redis(redis.url);
      cluster = await startCluster({ redis: redis.url, gateways: 1 });
    });
    afterAll(async () => {
      await cluster?.stop();
      admin?.disconnect();
      await redis?.stop();
    });

    it('leaves no state, no timer and no registration behind', async () => {
      const gateway = cluster.gateways[0]!.gateway!;
      const model = new ReadModel(admin, cluster.keyPrefix);
      await admin.call('CLIENT', 'PAUSE', '5000', 'WRITE'); // the registration script waits
      try {
        const client = cluster.socket({ sub: 'early-leaver', token: await cluster.token({ sub: 'early-leaver' }) });
        await eventually(() => gateway.internals().handshaking === 1, { what: 'the handshake under way' });
        client.close();
      } finally {
        await admin.call('CLIENT', 'UNPAUSE');
      }
      await eventually(() => gateway.internals().handshaking === 0);
      await eventually(async () => (await model.counts()).connections === 0 && (await model.userSocketCount('early-leaver')) === 0, {
        what: 'the registration undone',
      });
      expect(gateway.internals()).toEqual({ sockets: 0, expiries: 0, handshaking: 0 });
    });
  });

  describe('a client that goes away while its auth:refresh is being verified', () => {
    let cluster: Cluster;
    let hold: { reached: () => void; release: Promise<void> } | undefined;
    beforeAll(async () => {
      cluster = await startCluster({ redis: inject('redisUrl'),
        gateways: 1,
        wrapVerifier: (v): TokenVerifier => ({
          ...v,
          verifyAccess: async (token) => {
            const h = hold;
            hold = undefined;
            if (h) {
              h.reached();
              await h.release;
            }
            return v.verifyAccess(token);
          },
        }),
      });
    });
    afterAll(() => cluster?.stop());

    it('schedules no expiry for a socket that is gone', async () => {
      const g = cluster.gateways[0]!;
      const client = await cluster.connect('refresher');
      expect(g.gateway!.internals()).toMatchObject({ sockets: 1, expiries: 1 });
      let release!: () => void;
      const reached = new Promise<void>((resolve) => {
        hold = { reached: resolve, release: new Promise<void>((r) => (release = r)) };
      });
      client.emit('auth:refresh', { token: await cluster.token({ sub: 'refresher', expiresIn: 7200 }) }, () => {});
      await reached;
      client.close();
      await eventually(() => g.gateway!.internals().sockets === 0);
      expect(g.gateway!.internals().expiries).toBe(0);
      release();
      // the refresh finishes (counted by the event metrics), after its socket is gone
      await eventually(async () => (await scrapeMetric(`${g.opsUrl}/metrics`, 'switchboard_gateway_events_total', { event: 'auth:refresh' })) === 1);
      expect(g.gateway!.internals()).toEqual({ sockets: 0, expiries: 0, handshaking: 0 });
    });
  });
});
