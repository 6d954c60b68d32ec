import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { afterEach, describe, expect, inject, it } from 'vitest';
import { NOTIFICATIONS_QUEUE } from '@switchboard/protocol';
import { deleteKeys, eventually, randomKeyPrefix, spawnOwned } from '@switchboard/testkit';
import { spawnDispatcher, startDispatcher } from './helpers.js';

/** Runs `promtool check metrics` on an exposition body. */
function promtool(body: string): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawnOwned('promtool', ['check', 'metrics'], { stdio: ['pipe', 'pipe', 'pipe'] });
    let output = '';
    child.stdout!.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (output += d.toString()));
    child.once('error', reject);
    child.once('exit', (code) => resolve({ code, output }));
    child.stdin!.end(body);
  });
}

describe('operations', () => {
  const cleanup: Array<() => Promise<unknown>> = [];
  afterEach(async () => {
    for (const fn of cleanup.splice(0).reverse()) await fn().catch(() => {});
  });

  it('serves /healthz, /readyz and /metrics that pass promtool, then shuts down on SIGTERM', async () => {
    const redisUrl = inject('redisUrl');
    const prefix = randomKeyPrefix();
    const redis = new Redis(redisUrl);
    redis.on('error', () => {});
    const queue = new Queue(NOTIFICATIONS_QUEUE, { connection: redis, prefix });
    queue.on('error', () => {});
    cleanup.push(async () => {
      await queue.close();
      await deleteKeys(redis, prefix);
      await redis.quit();
    });

    const proc = spawnDispatcher({ REDIS_URL: redisUrl, KEY_PREFIX: prefix, LOG_LEVEL: 'info' });
    cleanup.push(() => proc.kill());
    const started = await eventually(() => proc.logs().find((l) => l.msg === 'dispatcher started'), {
      what: 'the dispatcher to log its start',
    });
    expect(started).toMatchObject({ service: 'dispatcher', level: 30 });
    const base = `http://127.0.0.1:${started.opsPort as number}`;

    const ok = await queue.add('n', { to: { userId: 'ops-user' }, type: 'ops.ok', title: 'secret-title' });
    const bad = await queue.add('n', { to: { userId: 'bad id' }, type: 'ops.bad' });
    await eventually(async () => (await ok.getState()) === 'completed' && (await bad.getState()) === 'failed', {
      what: 'both jobs processed',
    });

    expect((await fetch(`${base}/healthz`)).status).toBe(200);
    const ready = await fetch(`${base}/readyz`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toEqual({ status: 'ready' });

    const res = await fetch(`${base}/metrics`);
    expect(res.status).toBe(200);
    const body = await res.text();
    const check = await promtool(body);
    const findings = check.output.split('\n').filter((l) => l.trim() !== '');
    expect(findings).toEqual([]);
    expect(check.code).toBe(0);
    expect(body).toMatch(/^switchboard_dispatcher_jobs_total\{result="completed",service="dispatcher",pod="[^"]+"\} 1$/m);
    expect(body).toMatch(/^switchboard_dispatcher_jobs_total\{result="invalid",[^}]*\} 1$/m);
    expect(body).toMatch(/^switchboard_dispatcher_job_duration_seconds_count\{[^}]*\} 2$/m);
    expect(body).toMatch(/^switchboard_notification_delivery_latency_seconds_count\{[^}]*\} 1$/m);
    expect(body).toMatch(/^switchboard_queue_jobs\{state="completed",[^}]*\} 1$/m);
    expect(body).toMatch(/^switchboard_queue_jobs\{state="failed",[^}]*\} 1$/m);
    expect(body).not.toContain('ops-user');

    // logs name the job, never its content
    expect(proc.output()).toContain('invalid notification job');
    expect(proc.output()).not.toContain('secret-title');

    const exit = await proc.kill('SIGTERM');
    expect(exit).toEqual({ code: 0, signal: null });
    expect(proc.logs().some((l) => l.msg === 'shutting down' && l.signal === 'SIGTERM')).toBe(true);
  });

  it('is not ready once closing, and closes within the shutdown timeout', async () => {
    const redisUrl = inject('redisUrl');
    const prefix = randomKeyPrefix();
    const d = await startDispatcher(redisUrl, prefix, { SHUTDOWN_TIMEOUT_MS: '2000' });
    const base = `http://127.0.0.1:${d.dispatcher.opsPort!}`;
    await eventually(async () => (await fetch(`${base}/readyz`)).status === 200, { what: 'readiness' });
    const began = Date.now();
    const closing = d.close();
    expect(await d.dispatcher.ready()).toBe(false);
    await closing;
    expect(Date.now() - began).toBeLessThan(2000);
  });

  it('refuses an invalid environment with a message naming the variable', async () => {
    const proc = spawnDispatcher({ REDIS_URL: 'http://nope', KEY_PREFIX: randomKeyPrefix() });
    cleanup.push(() => proc.kill());
    const exit = await proc.exited;
    expect(exit.code).toBe(1);
    expect(proc.output()).toContain('REDIS_URL');
  });
});
