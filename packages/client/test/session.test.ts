import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from 'vitest';
import { eventually, waitFor } from '@switchboard/testkit';
import { startCluster, type Cluster } from '@switchboard/harness';
import { clientFactory, expiryMs, next, record } from './helpers.js';

describe('tokens', () => {
  let cluster: Cluster;
  const clients = clientFactory(() => cluster);

  beforeAll(async () => {
    // session:expiring comes 2 s before exp, so a 3 s token is warned about after about 1 s;
    // guests are allowed so that a fall back to a guest session would show
    cluster = await startCluster({ redis: inject('redisUrl'),
      gateways: 2,
      env: { TOKEN_EXPIRY_WARNING_SEC: '2', ALLOW_GUESTS: 'true' },
    });
  });
  afterEach(() => clients.closeAll());
  afterAll(() => cluster.stop());

  it('never falls back to a guest session when the token function fails or returns nothing', async () => {
    const guest = clients.create({});
    expect((await guest.ready()).userId).toMatch(/^guest:/);

    const failing = clients.create({ token: () => Promise.reject(new Error('token endpoint down')), socket: { reconnection: false } });
    await expect(failing.ready()).rejects.toMatchObject({ code: 'AUTH_REQUIRED', message: expect.stringMatching(/token endpoint down/) });
    const empty = clients.create({ token: () => '', socket: { reconnection: false } });
    await expect(empty.ready()).rejects.toMatchObject({ code: 'AUTH_REQUIRED', message: expect.stringMatching(/no token/) });
    expect(failing.session).toBeUndefined();
    expect(empty.session).toBeUndefined();
  });

  it('retries a failed token function with the reconnection policy', async () => {
    let calls = 0;
    const client = clients.create({
      token: async () => {
        if (calls++ === 0) throw new Error('token endpoint down');
        return cluster.token({ sub: 'retried' });
      },
    });
    await expect(client.ready()).rejects.toMatchObject({ code: 'AUTH_REQUIRED' });
    expect((await client.ready()).userId).toBe('retried');
    expect(calls).toBe(2);
  });

  it('refreshes the token on session:expiring and stays connected past the old expiry', async () => {
    const issued: string[] = [];
    const client = clients.create({
      token: async () => {
        const token = await cluster.token({ sub: 'renewer', expiresIn: issued.length === 0 ? 3 : 3600 });
        issued.push(token);
        return token;
      },
    });
    const errors = record(client, 'session:error');
    const expiring = next(client, 'session:expiring', 5000);
    const session = await client.ready();
    const oldExpiry = expiryMs(issued[0]!);

    expect((await expiring).exp * 1000).toBe(oldExpiry);
    await eventually(() => issued.length === 2);

    // still answering well after the first token ran out, on the same connection
    await eventually(
      async () => {
        await client.ping();
        return Date.now() > oldExpiry + 1000;
      },
      { timeoutMs: 8000, intervalMs: 100 },
    );
    expect(client.socket.connected).toBe(true);
    expect(client.session?.socketId).toBe(session.socketId);
    expect(errors).toEqual([]);
  });

  it('loses the session at expiry with a static token (nothing to refresh with)', async () => {
    const client = await clients.connect({ sub: 'static', expiresIn: 3 }, { socket: { reconnection: false } });
    const expired = next(client, 'session:error', 6000);
    const gone = waitFor(client.socket, 'disconnect', 6000);
    expect(await expired).toEqual({ code: 'AUTH_EXPIRED', message: expect.any(String) });
    expect(await gone).toBe('io server disconnect');
    await expect(client.ready()).rejects.toMatchObject({ code: 'DISCONNECTED' });
  });

  it('reports a refused refresh as a session:error, then the server ends the session', async () => {
    let calls = 0;
    const client = clients.create({
      // the second token is for somebody else: the server refuses it
      token: () => cluster.token({ sub: calls++ === 0 ? 'refresher' : 'somebody-else', expiresIn: 3 }),
      socket: { reconnection: false },
    });
    const errors = record(client, 'session:error');
    await client.ready();
    await eventually(() => errors.length === 1, { timeoutMs: 5000 });
    expect(errors[0]).toEqual({ code: 'FORBIDDEN', message: expect.stringMatching(/another user/), event: 'auth:refresh' });
    await eventually(() => errors.length === 2, { timeoutMs: 6000 });
    expect(errors[1]).toMatchObject({ code: 'AUTH_EXPIRED' });
    await eventually(() => !client.socket.connected);
  });
});
