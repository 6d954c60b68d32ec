import { Job, Queue } from 'bullmq';
import type { Browser, Page } from 'playwright-core';
import { io as ioClient } from 'socket.io-client';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { NOTIFICATIONS_QUEUE, SERVER_SENDER, type Notification, type RoomMessage } from '@switchboard/protocol';
import { closeRedis, createRedisClient, isCluster, queuePrefix, type RedisClient } from '@switchboard/store';
import { collect, eventually, startHaproxy, waitFor, type HaproxyHandle } from '@switchboard/testkit';
import {
  startAdminProcess,
  startCluster,
  startDispatcherProcess,
  type ClientSocket,
  type Cluster,
  type ProcessHandle,
} from '@switchboard/harness';
import { accessibilityViolations, launchBrowser, screenshot } from '@switchboard/testkit/browser';

const API_KEY = 'console-browser-key-0123456789abcdef';
const HEARTBEAT_MS = 5000;

/**
 * The console in a real browser against a cluster run the way `scripts/cluster.sh` runs it:
 * gateway processes behind HAProxy from deploy/, the dispatcher and the admin as processes.
 * Clients are socket.io clients through the load balancer.
 */
describe('operator console in a browser', () => {
  let cluster: Cluster;
  let lb: HaproxyHandle;
  let dispatcher: ProcessHandle;
  let admin: ProcessHandle;
  let browser: Browser;
  let page: Page;
  let queue: Queue;
  let connection: RedisClient | undefined;
  const clients: ClientSocket[] = [];
  const cspViolations: string[] = [];

  beforeAll(async () => {
    // The default heartbeat: at the harness's 1 s, a gateway stalled for 2 s on a busy machine is reaped.
    cluster = await startCluster({
      redis: inject('redis'),
      gateways: 2,
      processes: true,
      env: { TRUST_PROXY: 'true', HEARTBEAT_INTERVAL_MS: String(HEARTBEAT_MS) },
    });
    lb = await startHaproxy({ gateways: cluster.gateways.map((g) => `127.0.0.1:${g.port}`) });
    const services = { redis: cluster.redisEnv, keyPrefix: cluster.keyPrefix };
    dispatcher = await startDispatcherProcess(services);
    admin = await startAdminProcess({ ...services, apiKeys: [API_KEY], env: { HEARTBEAT_INTERVAL_MS: String(HEARTBEAT_MS) } });
    connection = createRedisClient(cluster.redisConfig, 'test-queue', { warn: () => {} });
    queue = new Queue(NOTIFICATIONS_QUEUE, { connection, prefix: queuePrefix(cluster.keyPrefix, isCluster(connection)) });
    queue.on('error', () => {});
    browser = await launchBrowser();
    page = await (await browser.newContext({ viewport: { width: 1280, height: 800 } })).newPage();
    page.on('console', (m) => {
      if (/content security policy/i.test(m.text())) cspViolations.push(m.text());
    });
  }, 90_000);

  afterAll(async () => {
    for (const c of clients) c.close();
    await browser?.close();
    await queue?.close();
    if (connection) await closeRedis(connection);
    await Promise.allSettled([admin?.stop(), dispatcher?.stop(), lb?.stop()]);
    await cluster?.stop();
  });

  /** A socket.io client through the load balancer, connected and ready. */
  async function client(sub: string, name?: string): Promise<ClientSocket> {
    const token = await cluster.token({ sub, ...(name ? { name } : {}) });
    const socket: ClientSocket = ioClient(lb.url, { auth: { token }, transports: ['websocket'], reconnection: false, forceNew: true });
    clients.push(socket);
    await waitFor(socket, 'session:ready', 10_000);
    return socket;
  }

  async function join(socket: ClientSocket, room: string): Promise<void> {
    const ack = await socket.emitWithAck('room:join', { room });
    if (!ack.ok) throw new Error(ack.error.message);
  }

  /** Screenshot, then no WCAG A/AA violation on what the view shows. */
  async function check(name: string): Promise<void> {
    await screenshot(page, `console-${name}`);
    expect(await accessibilityViolations(page), name).toEqual([]);
  }

  const text = (selector: string) => page.locator(selector).innerText();

  it('signs in with the keyboard, after refusing a wrong key', async () => {
    await page.goto(`${admin.url}/console`);
    const credential = page.getByLabel('Admin API key or admin token');
    await expect.poll(() => credential.evaluate((el) => el === el.ownerDocument.activeElement)).toBe(true);
    await check('sign-in');

    await page.keyboard.type('not-the-key-0123456789abcdef');
    await page.keyboard.press('Enter');
    await expect.poll(() => text('#sign-in-error')).toBe('Invalid credentials');

    await credential.fill('');
    await page.keyboard.type(API_KEY);
    await page.keyboard.press('Enter');
    await page.getByRole('heading', { name: 'Overview' }).waitFor();
    expect(await text('#principal')).toBe('api-key#0');
    // the key itself is nowhere the page's scripts can read
    const readable = await page.evaluate(() => {
      const w = globalThis as unknown as { localStorage: object; sessionStorage: object; document: { cookie: string } };
      return JSON.stringify({ ...w.localStorage }) + JSON.stringify({ ...w.sessionStorage }) + w.document.cookie;
    });
    expect(readable).not.toContain(API_KEY);
    expect(readable).not.toContain('sb_console'); // HttpOnly
  });

  it('the overview shows the live cluster’s pods and counts, refreshed as clients come and go', async () => {
    const [gw0, gw1] = cluster.gateways.map((g) => g.podId) as [string, string];
    const ann = await client('ann', 'Ann');
    await join(ann, 'public:lobby');
    await client('bob');
    // the console shows what the API says
    const expected = async () => {
      const res = await fetch(`${admin.url}/v1/stats`, { headers: { authorization: `Bearer ${API_KEY}` } });
      return (await res.json()) as { connections: number; usersOnline: number; rooms: number; pods: { id: string; connections: number }[] };
    };
    await eventually(async () => (await expected()).connections === 2, { what: 'two connections in the registry' });
    await expect.poll(() => text('#t-connections'), { timeout: 10_000 }).toBe('2');
    const stats = await expected();
    expect(await text('#t-users')).toBe(String(stats.usersOnline));
    expect(await text('#t-rooms')).toBe(String(stats.rooms));
    expect(await text('#t-pods')).toBe('2');
    for (const pod of [gw0, gw1]) {
      const row = page.locator(`#pods tr[data-pod="${pod}"]`);
      await expect.poll(() => row.locator('td').nth(4).innerText()).toBe('live');
      expect(await row.locator('td').nth(1).innerText()).toBe(String(stats.pods.find((p) => p.id === pod)?.connections));
    }
    expect(await text('#q-failed')).toBe('0');

    // a third client shows up without a reload
    await client('cid');
    await expect.poll(() => text('#t-connections'), { timeout: 10_000 }).toBe('3');
    await check('overview');
  });

  it('finds a user by the start of their id, shows their sockets, pods and rooms, and disconnects them', async () => {
    const dora = await client('dora@example.com', 'Dora');
    await join(dora, 'public:lobby');
    await join(dora, 'public:team/ops');
    await page.getByRole('link', { name: 'Users', exact: true }).focus();
    await page.keyboard.press('Enter');
    await page.getByLabel('User id, or how it starts').fill('dor');
    await page.keyboard.press('Enter');
    await page.locator('#users-table').getByRole('link', { name: 'dora@example.com' }).click();
    await expect.poll(() => text('#user-title')).toBe('Dora (dora@example.com)');
    await expect.poll(() => page.locator('#user-sockets tbody tr').count()).toBe(1);
    const socketRow = page.locator('#user-sockets tbody tr').first();
    expect(await socketRow.locator('td').nth(0).innerText()).toBe(dora.id);
    expect(cluster.gateways.map((g) => g.podId)).toContain(await socketRow.locator('td').nth(1).innerText());
    expect(await page.locator('#user-rooms li').allInnerTexts()).toEqual(['public:lobby', 'public:team/ops']);
    await check('user');

    const gone = waitFor(dora, 'disconnect', 10_000);
    await page.getByRole('button', { name: 'Disconnect every socket' }).click();
    expect(await gone).toBe('io server disconnect');
    await expect.poll(() => text('#user-result')).toBe('Disconnect sent to every pod: 1 socket of dora@example.com.');
    await page.getByRole('button', { name: 'Refresh' }).click();
    await expect.poll(() => text('#user-online'), { timeout: 10_000 }).toBe('no');

    // nobody by that name: the page says so
    await page.goto(`${admin.url}/console#users/nobody-ever`);
    await expect.poll(() => text('#user-result')).toBe('nobody-ever is neither online nor remembered.');
    expect(await page.getByRole('button', { name: 'Disconnect every socket' }).isDisabled()).toBe(true);
    await page.getByLabel('User id, or how it starts').fill('no one');
    await page.keyboard.press('Enter');
    await expect.poll(() => text('#users-error')).toBe('A user id has at most 128 characters of A–Z a–z 0–9 . _ : @ -');
  });

  it('lists rooms by prefix, shows a room’s members, and publishes a server message a client receives', async () => {
    const eve = await client('eve');
    await join(eve, 'public:team/dev');
    const received = collect(eve, 'room:message');
    await page.getByRole('link', { name: 'Rooms', exact: true }).click();
    await page.getByLabel('Room name starts with').fill('public:team/');
    await page.getByRole('button', { name: 'Search' }).click();
    await expect.poll(() => page.locator('#rooms-table tbody tr').allInnerTexts()).toEqual(['public:team/dev\t1']);
    await page.locator('#rooms-table').getByRole('link', { name: 'public:team/dev' }).click();
    await expect.poll(() => text('#room-count')).toBe('1 member');
    expect(await page.locator('#room-members tbody tr').allInnerTexts()).toEqual(['eve\t\tonline']);

    await page.getByLabel('Type (optional)').fill('ops.notice');
    await page.getByLabel('Data (JSON)').fill('{"text": "maintenance at 02:00"}');
    await page.getByRole('button', { name: 'Publish' }).click();
    await eventually(() => received.length === 1, { what: 'the message at the client' });
    const message: RoomMessage = received[0]!;
    expect(message).toMatchObject({ room: 'public:team/dev', type: 'ops.notice', from: SERVER_SENDER, data: { text: 'maintenance at 02:00' } });
    await expect.poll(() => text('#publish-result')).toMatch(new RegExp(`^Published message ${message.id.replace(/[-.]/g, '\\$&')} at `));

    // JSON that is not JSON is refused on the page
    await page.getByLabel('Data (JSON)').fill('{text: nope}');
    await page.getByRole('button', { name: 'Publish' }).click();
    await expect.poll(() => text('#publish-result')).toMatch(/^Data is not valid JSON: /);
    expect(received).toHaveLength(1);
    await check('room');
  });

  it('sends a notification to a user, who receives it', async () => {
    const fay = await client('fay');
    const next = waitFor(fay, 'notification', 10_000);
    await page.getByRole('link', { name: 'Notifications', exact: true }).click();
    await page.getByLabel('User id', { exact: true }).fill('fay');
    await page.getByLabel('Title (optional)').fill('Your export is ready');
    await page.getByRole('button', { name: 'Send' }).click();
    const notification: Notification = await next;
    expect(notification).toMatchObject({ type: 'ops.message', title: 'Your export is ready' });
    await expect.poll(() => text('#notify-result')).toBe(`Enqueued notification ${notification.id}.`);

    // the API's refusal reaches the operator
    await page.getByLabel('a room').check();
    await page.getByLabel('Room name', { exact: true }).fill('no room name');
    await page.getByRole('button', { name: 'Send' }).click();
    await expect.poll(() => text('#notify-result')).toMatch(/^body\/to/);
    await check('notifications');
  });

  it('shows a failed job with its reason, retries it, and it completes', async () => {
    const gus = await client('gus');
    const delivered = collect(gus, 'notification');
    // a backend enqueued a job the dispatcher refuses (no type) with plain BullMQ
    const job = await queue.add('notification', { to: { userId: 'gus' }, title: 'Your invoice' }, { attempts: 1 });
    await eventually(async () => (await job.getState()) === 'failed', { what: 'the job to fail' });

    await page.getByRole('link', { name: 'Queue', exact: true }).click();
    const row = page.locator(`#failed-jobs tr[data-job="${job.id}"]`);
    await row.waitFor({ timeout: 10_000 });
    expect(await row.locator('td.reason').innerText()).toMatch(/type/);
    expect(await row.locator('td').nth(2).innerText()).toBe('user');
    await expect.poll(() => text('#qq-failed')).toBe('1');
    await check('queue');

    // the producer is fixed; the operator retries the job
    await job.updateData({ to: { userId: 'gus' }, type: 'billing.invoice', title: 'Your invoice' });
    await row.getByRole('button', { name: `Retry job ${job.id}` }).click();
    await eventually(async () => (await Job.fromId(queue, job.id!))?.finishedOn !== undefined && (await job.getState()) === 'completed', {
      what: 'the retried job to complete',
    });
    await eventually(() => delivered.length === 1, { what: 'the notification at the client' });
    expect(delivered[0]).toMatchObject({ type: 'billing.invoice', title: 'Your invoice' });
    await expect.poll(() => text('#queue-result')).toBe(`Job ${job.id} is waiting again, with its attempts reset.`);
    await expect.poll(() => row.count(), { timeout: 10_000 }).toBe(0);
    await expect.poll(() => text('#qq-failed'), { timeout: 10_000 }).toBe('0');
  });

  it('opens Bull Board behind the sign-in; signing out ends the session for both', async () => {
    await page.getByRole('link', { name: 'Queue UI', exact: true }).click();
    await page.waitForURL(`${admin.url}/console/queues/`);
    await page.getByText('notifications', { exact: true }).first().waitFor({ timeout: 15_000 });
    await screenshot(page, 'console-queue-ui');

    await page.goto(`${admin.url}/console#overview`);
    await page.getByRole('button', { name: 'Sign out' }).click();
    await expect.poll(() => text('#sign-in-error')).toBe('Signed out.');
    expect(await page.locator('#nav').isHidden()).toBe(true);
    await page.goto(`${admin.url}/console/queues/`);
    expect(page.url()).toBe(`${admin.url}/console`);
    await page.getByLabel('Admin API key or admin token').waitFor();
  });

  it('ran without a single CSP violation on the console’s pages', () => {
    // Bull Board's CDN font stylesheet is refused by design; the console itself loads nothing else.
    expect(cspViolations.filter((v) => !v.includes('fonts.googleapis.com'))).toEqual([]);
  });
});
