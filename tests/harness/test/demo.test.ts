import { createServer, type AddressInfo } from 'node:net';
import type { Browser, Page } from 'playwright-core';
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from 'vitest';
import { freePort, mintToken, startHaproxy, type HaproxyHandle } from '@switchboard/testkit';
import { accessibilityViolations, launchBrowser, screenshot } from '@switchboard/testkit/browser';
import {
  startAdminProcess,
  startCluster,
  startDemoServer,
  startDispatcherProcess,
  type Cluster,
  type ProcessHandle,
} from '../src/index.js';

const API_KEY = 'demo-test-admin-key-0123456789abcdef';

/** The demo page, in two browser contexts, against the cluster `scripts/cluster.sh` runs. */
describe('the demo page with two users', () => {
  let cluster: Cluster;
  let lb: HaproxyHandle;
  let dispatcher: ProcessHandle;
  let admin: ProcessHandle;
  let demo: ProcessHandle;
  let browser: Browser;
  let alice: Page;
  let bob: Page;

  beforeAll(async () => {
    // The gateways must know the page's origin before the page's server runs: hold its port
    // until then, so no other process of a parallel test takes it meanwhile.
    const holder = createServer();
    await new Promise<void>((resolve) => holder.listen(0, '127.0.0.1', resolve));
    const demoPort = (holder.address() as AddressInfo).port;
    cluster = await startCluster({
      redis: inject('redis'),
      gateways: 2,
      processes: true,
      // The default heartbeat: at the harness's 1 s, a gateway stalled for 2 s on a busy machine is
      // reaped, and its users look offline for a moment.
      env: { CORS_ORIGINS: `http://127.0.0.1:${demoPort}`, TRUST_PROXY: 'true', HEARTBEAT_INTERVAL_MS: '5000' },
    });
    lb = await startHaproxy({ gateways: cluster.gateways.map((g) => `127.0.0.1:${g.port}`) });
    const services = { redis: cluster.redisEnv, keyPrefix: cluster.keyPrefix };
    dispatcher = await startDispatcherProcess(services);
    admin = await startAdminProcess({ ...services, apiKeys: [API_KEY] });
    await new Promise<void>((resolve) => holder.close(() => resolve()));
    demo = await startDemoServer({ lbUrl: lb.url, port: demoPort, env: { DEMO_ADMIN_URL: admin.url, DEMO_ADMIN_API_KEY: API_KEY } });
    browser = await launchBrowser();
    const page = async () => (await browser.newContext({ viewport: { width: 1280, height: 900 } })).newPage();
    alice = await page();
    bob = await page();
  }, 90_000);

  afterAll(async () => {
    await browser?.close();
    await Promise.allSettled([demo?.stop(), admin?.stop(), dispatcher?.stop(), lb?.stop()]);
    await cluster?.stop();
  });

  const text = (page: Page, selector: string) => page.locator(selector).innerText();

  // What each page logged (its "Events and errors" panel), when a step fails.
  afterEach(async (context) => {
    if (context.task.result?.state !== 'fail') return;
    for (const [who, page] of [['alice', alice], ['bob', bob]] as const) {
      const log = await page.locator('#log').innerText({ timeout: 1000 }).catch(() => '(no page)');
      console.error(`--- ${who}'s page log ---\n${log}`);
    }
    console.error(`--- demo server ---\n${demo.output()}`);
  });

  async function connect(page: Page, user: string, name: string): Promise<void> {
    await page.goto(demo.url);
    await page.getByLabel('User id', { exact: true }).fill(user);
    await page.getByLabel('Name', { exact: true }).fill(name);
    await page.getByRole('button', { name: 'Connect', exact: true }).click();
    await expect.poll(() => text(page, '#state'), { timeout: 10_000 }).toBe('connected');
    await page.locator('#log li', { hasText: `session:ready as ${user} on pod ` }).waitFor({ timeout: 10_000 });
  }

  async function join(page: Page, room: string): Promise<void> {
    await page.getByLabel('Room', { exact: true }).fill(room);
    await page.getByRole('button', { name: 'Join' }).click();
    await page.locator('#messages li.system', { hasText: `joined ${room}` }).waitFor({ timeout: 10_000 });
  }

  it('two users join one room, and the member count follows them both ways', async () => {
    await connect(alice, 'demo-alice', 'Alice');
    await join(alice, 'public:demo');
    await expect.poll(() => text(alice, '#room-info')).toBe('1 member');

    await connect(bob, 'demo-bob', 'Bob');
    await join(bob, 'public:demo');
    await expect.poll(() => text(bob, '#room-info')).toBe('2 members');
    // alice's page was told: room:member_joined
    await expect.poll(() => text(alice, '#room-info')).toBe('2 members');
    await alice.locator('#messages li.system', { hasText: 'Bob (demo-bob) joined' }).waitFor();
    // the two are on the cluster through the load balancer, on pods it chose
    expect(cluster.gateways.map((g) => g.podId)).toContain(await text(alice, '#pod'));
    expect(cluster.gateways.map((g) => g.podId)).toContain(await text(bob, '#pod'));
  });

  it('chat and typing: bob types, alice sees it; bob sends, alice reads it', async () => {
    await bob.getByLabel('Message').pressSequentially('hi al', { delay: 20 });
    await expect.poll(() => text(alice, '#typing'), { timeout: 5000 }).toBe('demo-bob is typing…');
    await screenshot(alice, 'demo-typing');
    await bob.getByLabel('Message').pressSequentially('ice');
    await bob.getByRole('button', { name: 'Send', exact: true }).click();
    await alice.locator('#messages li', { hasText: 'hi alice' }).waitFor();
    expect(await alice.locator('#messages li', { hasText: 'hi alice' }).locator('.who').innerText()).toBe('Bob');
    // a message ends its sender's typing
    await expect.poll(() => text(alice, '#typing')).toBe('');
    await bob.locator('#messages li.mine', { hasText: 'hi alice' }).waitFor();
  });

  it('presence: alice watches bob and sees him online', async () => {
    await alice.getByLabel('Watch users').fill('demo-bob');
    await alice.getByRole('button', { name: 'Watch' }).click();
    await expect.poll(() => text(alice, '#presence')).toBe('demo-bob: online');
  });

  it('“send me a notification” goes through the admin API and the unread badge follows it live', async () => {
    expect(await text(bob, '#badge')).toBe('0 unread');
    await bob.getByRole('button', { name: 'Send me a notification' }).click();
    await expect.poll(() => text(bob, '#badge'), { timeout: 10_000 }).toBe('1 unread');
    expect(await bob.locator('#badge').getAttribute('class')).toContain('has-unread');
    await bob.locator('#notifications li.unread', { hasText: 'Hello from the demo' }).waitFor();
    expect(await text(bob, '#unread')).toBe('1');
    // only bob's inbox: alice got nothing
    expect(await text(alice, '#badge')).toBe('0 unread');
    // the admin key stayed on the demo server
    const config = await bob.evaluate(async () => (await globalThis.fetch('/config.json')).text());
    expect(config).not.toContain(API_KEY);
    expect(JSON.parse(config)).toMatchObject({ notify: true });
    await screenshot(bob, 'demo-notification');

    await bob.getByRole('button', { name: 'Send me a notification' }).click();
    await expect.poll(() => text(bob, '#badge'), { timeout: 10_000 }).toBe('2 unread');
    await bob.getByRole('button', { name: 'Mark all read' }).click();
    await expect.poll(() => text(bob, '#badge')).toBe('0 unread');
    expect(await bob.locator('#notifications li.unread').count()).toBe(0);
  });

  it('bob leaves: alice’s count drops and his presence turns offline', async () => {
    await bob.getByRole('button', { name: 'Disconnect', exact: true }).click();
    await expect.poll(() => text(alice, '#room-info'), { timeout: 10_000 }).toBe('1 member');
    await alice.locator('#messages li.system', { hasText: 'demo-bob left' }).waitFor();
    await expect.poll(() => text(alice, '#presence'), { timeout: 10_000 }).toMatch(/^demo-bob: offline, last seen /);
    await screenshot(alice, 'demo-after-bob-left');
  });

  it('the page passes axe’s WCAG 2.1 A/AA checks', async () => {
    expect(await accessibilityViolations(alice)).toEqual([]);
  });

  it('/dev/notify passes on what the admin API refuses, never its key', async () => {
    const wrongKey = await startDemoServer({ lbUrl: lb.url, env: { DEMO_ADMIN_URL: admin.url, DEMO_ADMIN_API_KEY: 'not-the-admin-key-0123456789' } });
    try {
      const res = await fetch(`${wrongKey.url}/dev/notify`, { method: 'POST', headers: { authorization: `Bearer ${await mintToken({ sub: 'demo-dan' })}` } });
      expect(res.status).toBe(502);
      expect(await res.json()).toEqual({ error: { code: 'UNAVAILABLE', message: 'The admin API answered 401: Invalid credentials' } });
      expect(wrongKey.output()).not.toContain('not-the-admin-key-0123456789');
    } finally {
      await wrongKey.stop();
    }
  });
});

describe('the demo server’s /dev/notify', () => {
  const servers: ProcessHandle[] = [];
  afterAll(async () => {
    await Promise.allSettled(servers.map((s) => s.stop()));
  });
  const start = async (env: Record<string, string>) => {
    const s = await startDemoServer({ lbUrl: 'http://127.0.0.1:1', env });
    servers.push(s);
    return s;
  };
  const notify = async (s: ProcessHandle, authorization?: string) => {
    const res = await fetch(`${s.url}/dev/notify`, { method: 'POST', headers: authorization ? { authorization } : {} });
    return { status: res.status, body: (await res.json()) as { error?: { code: string; message: string }; id?: string } };
  };

  it('is off without an admin API, refuses a missing or bad token, and says when the admin API fails', async () => {
    const off = await start({});
    expect(await notify(off)).toEqual({
      status: 403,
      body: { error: { code: 'FORBIDDEN', message: 'Notifications are off. Start the demo server with DEMO_ADMIN_URL and DEMO_ADMIN_API_KEY.' } },
    });
    expect(JSON.parse(await (await fetch(`${off.url}/config.json`)).text())).toMatchObject({ notify: false });

    const nowhere = await start({ DEMO_ADMIN_URL: `http://127.0.0.1:${await freePort()}`, DEMO_ADMIN_API_KEY: API_KEY });
    const token = await mintToken({ sub: 'demo-carol' });
    expect((await notify(nowhere)).status).toBe(401);
    expect((await notify(nowhere, 'Bearer not-a-token')).body.error?.code).toBe('UNAUTHORIZED');
    const expired = await mintToken({ sub: 'demo-carol', expiresIn: -60 });
    expect((await notify(nowhere, `Bearer ${expired}`)).status).toBe(401);
    expect(await notify(nowhere, `Bearer ${token}`)).toEqual({ status: 502, body: { error: { code: 'UNAVAILABLE', message: 'The admin API did not answer' } } });
    expect((await fetch(`${nowhere.url}/dev/notify`)).status).toBe(405);
    expect(nowhere.output()).not.toContain(API_KEY);
  });

  it('refuses to start with half an admin configuration', async () => {
    await expect(startDemoServer({ lbUrl: 'http://127.0.0.1:1', env: { DEMO_ADMIN_URL: 'http://127.0.0.1:1' } })).rejects.toThrow(
      /DEMO_ADMIN_URL and DEMO_ADMIN_API_KEY are set together/,
    );
    await expect(startDemoServer({ lbUrl: 'http://127.0.0.1:1', env: { DEMO_ADMIN_URL: 'ftp://x', DEMO_ADMIN_API_KEY: API_KEY } })).rejects.toThrow(
      /DEMO_ADMIN_URL must be an http\(s\) URL/,
    );
  });
});
