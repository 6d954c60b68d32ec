import { spawnSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { serviceMain, startCluster, type Cluster } from '@switchboard/harness';

describe('metrics', () => {
  let cluster: Cluster;
  beforeAll(async () => {
    cluster = await startCluster({ redis: inject('redis'), gateways: 1, processes: true });
  });
  afterAll(() => cluster.stop());

  it('serves /metrics on the ops port in a format promtool accepts, with bounded labels', async () => {
    const c = await cluster.connect('metrics-user');
    await c.emitWithAck('room:join', { room: 'public:metrics-room' });
    await c.emitWithAck('room:publish', { room: 'public:metrics-room', data: 1 });
    await c.emitWithAck('room:join', { room: 'nope' });
    await cluster.refused({ sub: 'x', token: 'bad' });
    const res = await fetch(`${cluster.gateways[0]!.opsUrl}/metrics`);
    expect(res.status).toBe(200);
    const body = await res.text();
    const check = spawnSync('promtool', ['check', 'metrics'], { input: body, encoding: 'utf8' });
    expect(check.error).toBeUndefined();
    expect(check.status, `${check.stdout}${check.stderr}`).toBe(0);
    for (const name of [
      'switchboard_gateway_connections ',
      'switchboard_gateway_connections_total{result="accepted"',
      'switchboard_gateway_connections_total{result="auth_invalid"',
      'switchboard_gateway_events_total{event="room:publish",result="ok"',
      'switchboard_gateway_events_total{event="room:join",result="invalid_payload"',
      'switchboard_gateway_event_duration_seconds_bucket',
      'switchboard_registry_operation_duration_seconds_bucket',
      'switchboard_process_cpu_seconds_total',
    ]) {
      expect(body).toContain(name);
    }
    expect(body).not.toContain('metrics-user');
    expect(body).not.toContain('metrics-room');
  });

  it('comes from a gateway process running on the Node of the test run', async () => {
    // CI runs the suite on Node 20 and 24: the processes it starts must run on the same one
    const body = await (await fetch(`${cluster.gateways[0]!.opsUrl}/metrics`)).text();
    expect(/^switchboard_nodejs_version_info\{version="(v[^"]+)"/m.exec(body)?.[1]).toBe(process.version);
  });

  it('is not served on the public port, which has health endpoints only', async () => {
    const g = cluster.gateways[0]!;
    expect((await fetch(`${g.url}/metrics`)).status).toBe(404);
    expect((await fetch(`${g.url}/healthz`)).status).toBe(200);
    expect((await fetch(`${g.url}/readyz`)).status).toBe(200);
    expect((await fetch(`${g.opsUrl}/readyz`)).status).toBe(200);
  });
});

describe('start-up configuration', () => {
  it('exits 1 with a message naming the variable, without a stack trace', async () => {
    const main = serviceMain('gateway');
    for (const [env, expected] of [
      [{ JWT_SECRET: 'too-short' }, /JWT_SECRET must be at least 32 bytes/],
      [{ JWT_SECRET: 'x'.repeat(40), PORT: 'abc' }, /Invalid configuration: PORT/],
      [{}, /JWT_SECRET is required/],
      // unparseable: the Redis client would throw with the whole URL as `input`
      [{ JWT_SECRET: 'x'.repeat(40), REDIS_URL: 'redis://:too-short@redis.internal:notaport' }, /REDIS_URL is not a valid URL \(got "redis:\/\/\*\*\*@redis\.internal:notaport"\)/],
    ] as const) {
      const r = spawnSync(process.execPath, [main], { env: { PATH: process.env.PATH ?? '', ...env }, encoding: 'utf8', timeout: 10_000 });
      expect(r.status).toBe(1);
      expect(r.stderr).toMatch(expected);
      expect(r.stderr).not.toMatch(/\n\s+at /);
      expect(r.stderr).not.toContain('too-short');
    }
  });
});
